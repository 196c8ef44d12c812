"""How keys and namespace paths become the bytes stored in the table.

A namespace path ``("a", "b")`` is encoded component by component: the UTF-8 bytes of each name,
with ``0x00`` escaped as ``0x01 0x01`` and ``0x01`` as ``0x01 0x02``, each name terminated by
``0x00``. So the encoding is injective, every descendant's encoding starts with its ancestor's,
and a sibling that merely shares a prefix (``"sess"`` vs ``"sessions"``) does not: the rows of a
namespace and all below it are exactly those in the byte range ``[prefix, prefix[:-1] + 0x01)``,
which the primary key index answers on every dialect (binary columns compare bytewise).
The root namespace (``None``) is the empty path, encoded as ``b""``.
"""

from __future__ import annotations

import hashlib

from .schema import NAMESPACE_MAX_BYTES

__all__ = ("decode_namespace", "encode_namespace", "key_digest", "namespace_range")

_TERMINATOR = b"\x00"


def _utf8(text: str) -> bytes:
    # surrogatepass keeps the mapping injective for every Python str, lone surrogates included
    return text.encode("utf-8", "surrogatepass")


def key_digest(key: str) -> bytes:
    """SHA-256 digest of ``key``: what the table stores and looks up instead of the key."""
    return hashlib.sha256(_utf8(key)).digest()


def encode_namespace(path: tuple[str, ...]) -> bytes:
    """Encode a namespace path; raise ``ValueError`` when it does not fit the column."""
    encoded = b"".join(
        _utf8(name).replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01") + _TERMINATOR for name in path
    )
    if len(encoded) > NAMESPACE_MAX_BYTES:
        raise ValueError(
            f"namespace path {path!r} is too long: {len(encoded)} bytes encoded, "
            f"at most {NAMESPACE_MAX_BYTES}"
        )
    return encoded


def decode_namespace(encoded: bytes) -> tuple[str, ...]:
    """Inverse of :func:`encode_namespace`."""
    if not encoded:
        return ()
    parts = encoded[:-1].split(_TERMINATOR)
    return tuple(
        part.replace(b"\x01\x01", b"\x00").replace(b"\x01\x02", b"\x01").decode("utf-8", "surrogatepass")
        for part in parts
    )


def namespace_range(encoded: bytes) -> tuple[bytes, bytes] | None:
    """``(low, high)`` such that a namespace and its descendants are ``low <= ns < high``.

    ``None`` for the root namespace: everything.
    """
    if not encoded:
        return None
    return encoded, encoded[:-1] + b"\x01"
