"""Keys and encryption: secrets at rest (Fernet) and the key that signs UI sessions.

Variables and connection passwords/extras are stored as Fernet tokens
(AES-128-CBC with HMAC-SHA256, from the ``cryptography`` package; spec:
https://github.com/fernet/spec). The key is ``secrets.fernet_key`` if set,
else the file ``HEADRACE_HOME/fernet.key``, created (mode 0600) the first time
it is needed. Several processes may race to create a key file: the first
hard link into place wins and everyone reads the winner's key.

The session signing key works the same way (``api.secret_key`` or
``HEADRACE_HOME/secret_key``).
"""

from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from headrace.config import Settings
from headrace.exceptions import SecretsError


def _key_file(path: Path, make: bytes) -> bytes:
    """Read the key in ``path``; create it with ``make`` (mode 0600) if it does not exist yet.

    The key is written whole to a private temporary file first and then hard-linked into place, so that
    the file appears with its content at once: a process that reads it while another creates it sees
    the whole key or no file, never an empty one.
    """
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{_secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(make + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:  # another process created it first: use theirs
            return path.read_bytes().strip()
    finally:
        temporary.unlink(missing_ok=True)
    return make


def fernet_key(settings: Settings) -> bytes:
    """The Fernet key: ``secrets.fernet_key``, else ``HEADRACE_HOME/fernet.key`` (created if missing)."""
    configured = settings.get_str("secrets", "fernet_key")
    if configured:
        return configured.encode()
    return _key_file(settings.home / "fernet.key", Fernet.generate_key())


def session_secret(settings: Settings) -> str:
    """The key that signs UI session cookies: ``api.secret_key``, else ``HEADRACE_HOME/secret_key``."""
    configured = settings.get_str("api", "secret_key")
    if configured:
        return configured
    return _key_file(settings.home / "secret_key", _secrets.token_urlsafe(48).encode()).decode()


SENSITIVE_KEY_WORDS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "authorization",
    "credential",
)
"""A variable or extra field whose key contains one of these (case-insensitive) holds a secret.
The list follows the words Apache Airflow's secrets masker looks for."""

MASK = "***"
"""What a secret is replaced with in API output, the UI and task logs."""


def is_sensitive_key(key: str) -> bool:
    """True if ``key`` names a secret (see :data:`SENSITIVE_KEY_WORDS`)."""
    lowered = key.lower()
    return any(word in lowered for word in SENSITIVE_KEY_WORDS)


class Encryptor:
    """Encrypts and decrypts secret strings with the configured Fernet key.

    Raises ``SecretsError`` when the key is not a valid Fernet key, or when a
    stored value was encrypted with another key (the message says which
    setting to check).
    """

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise SecretsError(
                f"secrets.fernet_key is not a valid Fernet key (32 url-safe base64-encoded bytes): {exc}"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Encryptor:
        """The encryptor for this installation's key (see :func:`fernet_key`)."""
        return cls(fernet_key(settings))

    def encrypt(self, plaintext: str) -> str:
        """Return the Fernet token (ASCII) of ``plaintext``."""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Return the plaintext of a token made by :meth:`encrypt`; raises ``SecretsError`` on a wrong key."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise SecretsError(
                "a stored secret cannot be decrypted: it was encrypted with another key; "
                "check secrets.fernet_key / HEADRACE_HOME/fernet.key"
            ) from None


__all__ = ["MASK", "SENSITIVE_KEY_WORDS", "Encryptor", "fernet_key", "is_sensitive_key", "session_secret"]
