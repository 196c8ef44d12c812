"""The Alembic environment of sqlsession's own commands and of this repository's ``alembic.ini``."""
