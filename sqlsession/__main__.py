"""``python -m sqlsession``: see :func:`sqlsession.cli.main`."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
