"""Sealed values: how a value is compressed and encrypted before it is stored, and opened after.

Stored format (all integers unsigned):

- A plain value: the caller's bytes as they are. Values written by earlier versions are plain.
- A sealed value (an "envelope"): ``MAGIC`` (4 bytes, ``ff 53 51 53``), the format version (1 byte,
  now ``1``), flags (1 byte: ``0x01`` compressed with zlib, ``0x02`` encrypted; other bits unused),
  then

  - encrypted: the key id (4 bytes), the nonce (12 bytes), the AES-256-GCM ciphertext of the body
    and its 16-byte tag. The associated data is the envelope's first 10 bytes (magic to key id),
    then the row's key digest (32 bytes), then its namespace bytes: a value opens in its own row
    only, under the key that sealed it, with the flags it was sealed with.
  - not encrypted: the body.

  The body is the value, zlib-compressed when the compressed flag is set.

Which is which: a stored value is sealed exactly when it starts with ``MAGIC`` and parses as an
envelope of a known version (known flags, long enough, a compressed body that is one complete zlib
stream); everything else is plain. A compressed body that inflates past ``max_value_size`` reads as
missing (a store with a smaller limit than the writer's must neither expand it nor return the
stored bytes as the value), and ``reseal`` leaves it alone. Every store writes a
value that starts with ``MAGIC`` as an envelope (flags 0), so whatever this version writes reads
back exactly. A value written by an earlier version (which stored every value plain) that happens
to start with ``MAGIC`` and parse as an envelope would be misread: ``0xff`` never occurs in UTF-8,
so no value stored as ``str`` can start with it, and JSON, msgpack maps and pickles start otherwise.

Reading: a plain value is returned as it is when the store has no encryption keys, or when it has
``read_unsealed=True``; with keys (and without the opt-in) it reads as missing, so that whoever can
write the table cannot plant a value in the clear. An encrypted envelope that does not open
(sealed under a key not in the list, tampered with, copied from another row, or read by a store
without keys) reads as missing. Each such cause is logged once per store (logger ``sqlsession``,
warning, no keys, values or namespaces).

Nonces are random (96 bits): after 2**32 values sealed under one key the chance that two share a
nonce reaches 2**-32, the bound NIST SP 800-38D sets for AES-GCM; rotate the key well before that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = (
    "ENCRYPTION_KEYS_ENV",
    "KEY_SIZE",
    "MAGIC",
    "Sealer",
    "parse_encryption_keys",
)

logger = logging.getLogger("sqlsession")

MAGIC: Final = b"\xffSQS"
VERSION: Final = 1
COMPRESSED: Final = 0x01
ENCRYPTED: Final = 0x02
_KNOWN_FLAGS: Final = COMPRESSED | ENCRYPTED
_HEAD: Final = len(MAGIC) + 2  # magic, version, flags
KEY_SIZE: Final = 32
KEY_ID_SIZE: Final = 4
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
_SEALED_HEAD: Final = _HEAD + KEY_ID_SIZE  # what the associated data starts with
_ENCRYPTED_MIN: Final = _SEALED_HEAD + NONCE_SIZE + TAG_SIZE
ZLIB_LEVEL: Final = 1
"""zlib's fastest level: on 16 KiB of JSON or HTML about 2 to 5 times faster than the default (6),
for 10 to 20 % more bytes (``python -m bench.sealing``)."""

ENCRYPTION_KEYS_ENV: Final = "SQLSESSION_ENCRYPTION_KEYS"
"""The environment variable ``python -m sqlsession reseal`` reads the keys from."""

INSTALL_HINT: Final = "encryption_keys need the cryptography package: pip install 'sqlsession[encryption]'"

# why a stored value read as missing: each is logged once per store
_CAUSES: Final = {
    "unsealed": "a value stored without encryption read as missing: encryption_keys are set "
    "(read_unsealed=True reads such values during a migration; `python -m sqlsession reseal` "
    "with read_unsealed seals them)",
    "unknown_key": "a value sealed under a key that is not in encryption_keys read as missing "
    "(key id %s); if that key was dropped too early, add it back and run the reseal command",
    "forged": "a value that does not authenticate under its key read as missing: it was altered, "
    "or copied from another row or namespace",
    "no_keys": "an encrypted value read as missing: this store has no encryption_keys",
    "corrupt": "a sealed value whose body does not decompress read as missing",
    "too_large": "a compressed value larger than max_value_size read as missing (written by a store "
    "with a larger max_value_size? give this one the same)",
}


class _TooLarge(Exception):
    """A compressed body that inflates past ``max_value_size``."""


def key_id(key: bytes) -> bytes:
    """The short id an encrypted value records of the key that sealed it (a keyed hash, not the key)."""
    return hmac.new(key, b"sqlsession key id", hashlib.sha256).digest()[:KEY_ID_SIZE]


def _aead_classes() -> tuple[type[AESGCM], type[Exception]]:
    """``cryptography``'s AES-GCM and the error of a value that does not authenticate."""
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as error:
        raise ModuleNotFoundError(INSTALL_HINT, name="cryptography") from error
    return AESGCM, InvalidTag


def _check_keys(keys: object) -> tuple[bytes, ...]:
    if isinstance(keys, (bytes, bytearray, memoryview, str)) or not isinstance(keys, Sequence):
        raise TypeError(
            "encryption_keys must be a list or tuple of 32-byte keys (the first seals, all open), "
            f"not {type(keys).__name__}"
        )
    checked: list[bytes] = []
    for index, key in enumerate(keys):
        if not isinstance(key, bytes):
            raise TypeError(f"encryption_keys[{index}] must be bytes, not {type(key).__name__}")
        if len(key) != KEY_SIZE:
            raise ValueError(
                f"encryption_keys[{index}] is {len(key)} bytes; keys are {KEY_SIZE} random bytes "
                "(os.urandom(32))"
            )
        if key in checked:
            raise ValueError(f"encryption_keys[{index}] repeats encryption_keys[{checked.index(key)}]")
        checked.append(key)
    ids = [key_id(key) for key in checked]
    if len(set(ids)) != len(ids):  # 2**-32 per pair of keys
        raise ValueError("two encryption_keys have the same key id: replace one with a new random key")
    return tuple(checked)


def parse_encryption_keys(text: str) -> tuple[bytes, ...]:
    """Keys from text such as an environment variable: comma-separated, each 64 hex digits or the
    base64 (standard or URL-safe alphabet, padding optional) of 32 bytes; blanks are ignored."""
    keys: list[bytes] = []
    for index, item in enumerate(part.strip() for part in text.split(",")):
        if not item:
            continue
        key: bytes | None = None
        if len(item) == 2 * KEY_SIZE:
            try:
                key = bytes.fromhex(item)
            except ValueError:
                key = None
        if key is None:
            try:
                padded = item + "=" * (-len(item) % 4)
                key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"encryption key {index + 1} is neither 64 hex digits nor base64") from None
        if len(key) != KEY_SIZE:
            raise ValueError(f"encryption key {index + 1} is {len(key)} bytes, not {KEY_SIZE}")
        keys.append(key)
    return tuple(keys)


class Sealer:
    """Seals values for one store (and its namespaces), and opens what it reads."""

    __slots__ = (
        "_aeads",
        "_compress_min",
        "_invalid_tag",
        "_logged",
        "_max_size",
        "_seal_id",
        "key_ids",
        "read_unsealed",
    )

    def __init__(
        self,
        *,
        compress_min_size: int | None,
        encryption_keys: Sequence[bytes],
        read_unsealed: bool,
        max_value_size: int,
    ) -> None:
        if compress_min_size is not None and (
            isinstance(compress_min_size, bool) or not isinstance(compress_min_size, int)
        ):
            raise TypeError(
                f"compress_min_size must be None or an int, not {type(compress_min_size).__name__}"
            )
        if compress_min_size is not None and compress_min_size < 0:
            raise ValueError(f"compress_min_size must be None or >= 0, not {compress_min_size!r}")
        if not isinstance(read_unsealed, bool):
            raise TypeError(f"read_unsealed must be a bool, not {type(read_unsealed).__name__}")
        keys = _check_keys(encryption_keys)
        aeads: dict[bytes, Any] = {}
        self._invalid_tag: type[Exception] = Exception
        if keys:
            aead, self._invalid_tag = _aead_classes()
            aeads = {key_id(key): aead(key) for key in keys}
        self._compress_min = compress_min_size
        self._aeads = aeads
        self._seal_id = key_id(keys[0]) if keys else None
        self._max_size = max_value_size
        self._logged: set[str] = set()
        self.read_unsealed = read_unsealed
        self.key_ids = tuple(key_id(key).hex() for key in keys)
        """The key ids (hex), in the order of the keys: the first seals."""

    @property
    def compress_min_size(self) -> int | None:
        return self._compress_min

    # -- writing ----------------------------------------------------------------------------------

    def seal(self, data: bytes, ns: bytes, kh: bytes) -> bytes:
        """What to store for ``data`` in the row ``(ns, kh)``."""
        flags = 0
        body = data
        minimum = self._compress_min
        if minimum is not None and len(data) >= minimum:
            packed = zlib.compress(data, ZLIB_LEVEL)
            # an unencrypted value that stays uncompressed is stored without a header
            overhead = 0 if self._seal_id is not None else _HEAD
            if len(packed) + overhead < len(data):
                flags, body = COMPRESSED, packed
        seal_id = self._seal_id
        if seal_id is not None:
            head = MAGIC + bytes((VERSION, flags | ENCRYPTED)) + seal_id
            nonce = os.urandom(NONCE_SIZE)
            sealed: bytes = self._aeads[seal_id].encrypt(nonce, body, head + kh + ns)
            return head + nonce + sealed
        if flags or data.startswith(MAGIC):
            return MAGIC + bytes((VERSION, flags)) + body
        return data

    def resealed(self, stored: bytes, ns: bytes, kh: bytes) -> bytes | None:
        """What ``reseal`` writes instead of ``stored``: the value sealed as ``seal`` would now, or
        ``None`` when it already is (under the first key) or does not open."""
        seal_id = self._seal_id
        if (
            seal_id is not None
            and stored[:_HEAD] in _ENCRYPTED_HEADS
            and stored[_HEAD:_SEALED_HEAD] == seal_id
            and len(stored) >= _ENCRYPTED_MIN
        ):
            return None
        data = self.open(stored, ns, kh)
        if data is None:
            return None
        new = self.seal(data, ns, kh)
        return None if new == stored else new

    # -- reading ----------------------------------------------------------------------------------

    def open(self, stored: bytes, ns: bytes, kh: bytes) -> bytes | None:
        """The value stored as ``stored`` in the row ``(ns, kh)``; ``None``: read it as missing."""
        data = stored  # plain, unless it parses as an envelope
        if stored.startswith(MAGIC) and len(stored) >= _HEAD and stored[len(MAGIC)] == VERSION:
            flags = stored[len(MAGIC) + 1]
            if not flags & ~_KNOWN_FLAGS:
                if flags & ENCRYPTED:
                    if len(stored) >= _ENCRYPTED_MIN:
                        return self._decrypt(stored, flags, ns, kh)
                elif not flags & COMPRESSED:
                    data = stored[_HEAD:]
                else:
                    try:
                        inflated = self._inflate(stored[_HEAD:])
                    except _TooLarge:  # a value, but not one this store may return
                        self._log("too_large")
                        return None
                    data = stored if inflated is None else inflated
        # not encrypted: whoever can write the table could have written it
        if self._seal_id is None or self.read_unsealed:
            return data
        self._log("unsealed")
        return None

    def _decrypt(self, stored: bytes, flags: int, ns: bytes, kh: bytes) -> bytes | None:
        if not self._aeads:
            self._log("no_keys")
            return None
        head = stored[:_SEALED_HEAD]
        aead = self._aeads.get(head[_HEAD:])
        if aead is None:
            self._log("unknown_key", head[_HEAD:].hex())
            return None
        nonce = stored[_SEALED_HEAD : _SEALED_HEAD + NONCE_SIZE]
        try:
            body: bytes = aead.decrypt(nonce, stored[_SEALED_HEAD + NONCE_SIZE :], head + kh + ns)
        except self._invalid_tag:
            self._log("forged")
            return None
        if not flags & COMPRESSED:
            return body
        try:
            data = self._inflate(body)
        except _TooLarge:
            self._log("too_large")
            return None
        if data is None:
            self._log("corrupt")
        return data

    def _inflate(self, body: bytes) -> bytes | None:
        """``body`` decompressed; ``None`` if it is not one complete zlib stream; ``_TooLarge`` if
        it inflates past ``max_value_size`` bytes (a small row must not expand to gigabytes)."""
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(body, self._max_size + 1)
        except zlib.error:
            return None
        if len(data) > self._max_size:
            raise _TooLarge
        if not inflater.eof or inflater.unused_data:
            return None
        return data

    def _log(self, cause: str, *args: object) -> None:
        if cause not in self._logged:
            self._logged.add(cause)
            logger.warning("sqlsession: " + _CAUSES[cause] + " (logged once per store)", *args)


_ENCRYPTED_HEADS: Final = frozenset(MAGIC + bytes((VERSION, flags | ENCRYPTED)) for flags in (0, COMPRESSED))
