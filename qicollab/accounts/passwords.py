"""Password hashing with Argon2id (argon2-cffi), at OWASP's recommended parameters.

OWASP's Password Storage Cheat Sheet lists Argon2id with m = 19 MiB, t = 2, p = 1 as a minimum
configuration; argon2-cffi's RFC 9106 "low memory" profile is stronger (64 MiB, t = 3, p = 4),
so we use that.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

_hasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)

#: Shortest password accepted (NIST SP 800-63B asks for at least 8; we ask for more).
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    """An Argon2id hash string that embeds its own parameters and salt."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; malformed hashes are simply a mismatch."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)
