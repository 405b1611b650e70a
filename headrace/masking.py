"""Secret masking, in one place: a try's log, and stored secrets shown by the API, UI and CLI.

**In a try's log** every secret the task fetched is written as ``***``. The task process replaces ``sys.stdout`` and ``sys.stderr`` with
:class:`MaskingStream` objects before any task code runs, so everything that
goes through Python's text streams is masked before it reaches the log file:
``print``, ``logging`` (its handler writes to ``sys.stderr``), tracebacks, and
the output of a ``BashOperator`` command (it reads the subprocess's pipe and
writes each line to ``sys.stdout``). Not masked: bytes written straight to
file descriptors 1/2 (``os.write``, C extensions, subprocesses that inherit
the descriptors) or to ``sys.stdout.buffer``.

Secrets are registered as the task fetches them (:meth:`SecretMasker.add`):
connection passwords, extra values under sensitive keys, variables whose key
is sensitive (:func:`headrace.crypto.is_sensitive_key`). Values shorter than
:data:`MIN_SECRET_LENGTH` are not masked (masking ``"1"`` would mangle every
number). Once a secret is known, output is held until a line is complete and
masked line by line, so a secret written in several pieces is still masked
when the pieces fall within one line; a partial line longer than
:data:`MAX_PENDING` characters is masked and written as it is.

**For display** (API answers, UI pages, ``headrace variables/connections``):
:func:`masked_variable`, :func:`masked_connection`, :func:`mask_sensitive`;
and :func:`masker_for_stored`, the same :class:`SecretMasker` loaded with
every stored secret (``secrets_store.stored_secrets_masker`` reads them), so
text a task wrote is masked in the API whatever the task itself had read.
This module reads no database: the task process imports it.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO
from urllib.parse import quote

from headrace.authoring.secrets import Connection
from headrace.crypto import MASK, is_sensitive_key
from headrace.exceptions import SecretsError

MIN_SECRET_LENGTH = 4
"""Shortest value (in characters) that is masked."""

MAX_PENDING = 64 * 1024
"""Longest partial line (in characters) held back waiting for its newline."""


class SecretMasker:
    """The set of secret strings of one task process, and ``mask(text)`` replacing them with ``***``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return self._pattern is not None

    def add(self, value: object) -> None:
        """Register ``value`` (str, or a number written as text) and its quoted forms (JSON, repr, URL).

        Multi-line values are registered line by line (output is masked per
        line); pieces shorter than :data:`MIN_SECRET_LENGTH` are ignored.
        """
        if value is None or isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return
        text = str(value)
        variants = {text, json.dumps(text)[1:-1], repr(text)[1:-1], quote(text, safe="")}
        pieces = {line for v in variants for line in v.splitlines() if len(line) >= MIN_SECRET_LENGTH}
        with self._lock:
            if pieces <= self._secrets:
                return
            self._secrets |= pieces
            # Longest first, so a secret that contains another one is masked whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_sensitive(self, key: str, value: object, _inherited: bool = False) -> None:
        """Register ``value`` if ``key`` names a secret; walk dicts and lists (all of a secret key's leaves)."""
        sensitive = _inherited or is_sensitive_key(key)
        if isinstance(value, dict):
            for k, v in value.items():
                self.add_sensitive(str(k), v, sensitive)
        elif isinstance(value, list):
            for item in value:
                self.add_sensitive(key, item, sensitive)
        elif sensitive:
            self.add(value)

    def mask(self, text: str) -> str:
        """``text`` with every registered secret replaced by ``***``."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)


class MaskingStream(io.TextIOBase):
    """A text stream that masks secrets line by line and writes to ``target``.

    Until the masker holds a secret, writes go straight through. ``flush``
    keeps an unfinished line back (so a secret split across writes is still
    masked); :meth:`drain` writes it out, at the end of the process.
    """

    def __init__(self, target: TextIO, masker: SecretMasker) -> None:
        super().__init__()
        self._target = target
        self._masker = masker
        self._pending = ""
        self._lock = threading.RLock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._target.errors

    @property
    def buffer(self) -> Any:
        """The target's binary buffer; bytes written there are NOT masked."""
        return self._target.buffer

    def fileno(self) -> int:
        return self._target.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        """Write ``text``: masked per complete line once a secret is known. Returns ``len(text)``."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            if not self._masker and not self._pending:
                self._target.write(text)
                return len(text)
            data = self._pending + text
            cut = data.rfind("\n") + 1
            if cut == 0 and len(data) > MAX_PENDING:
                cut = len(data)
            self._pending = data[cut:]
            if cut:
                self._target.write(self._masker.mask(data[:cut]))
            return len(text)

    def writelines(self, lines: Iterable[str]) -> None:  # type: ignore[override]
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the target (an unfinished line stays held back; see :meth:`drain`)."""
        with self._lock:
            self._target.flush()

    def drain(self) -> None:
        """Write out the unfinished line (masked) and flush: the process is about to end."""
        with self._lock:
            if self._pending:
                self._target.write(self._masker.mask(self._pending))
                self._pending = ""
            self._target.flush()


# --- display rules for stored secrets (API, UI, CLI) ------------------------------------------------------


def masked_variable(key: str, value: str) -> str:
    """``value`` for display: ``***`` if ``key`` names a secret (see ``crypto.is_sensitive_key``)."""
    return MASK if is_sensitive_key(key) else value


def masked_connection(conn: Connection) -> dict[str, Any]:
    """``conn.to_dict()`` for display: password and the values of sensitive extra keys as ``***``."""
    data = conn.to_dict()
    if conn.password is not None:
        data["password"] = MASK
    data["extra"] = mask_sensitive(conn.extra)
    return data


def mask_sensitive(value: Any, sensitive: bool = False) -> Any:
    """A copy of a JSON-like value with every leaf under a sensitive key (at any depth) as ``***``."""
    if isinstance(value, Mapping):
        return {k: mask_sensitive(v, sensitive or is_sensitive_key(str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_sensitive(v, sensitive) for v in value]
    return MASK if sensitive and value is not None else value


def masker_for_stored(
    variables: Iterable[tuple[str, str]],
    connections: Iterable[tuple[str | None, str | None]],
    decrypt: Callable[[str], str],
) -> SecretMasker:
    """A masker knowing every stored secret, from the encrypted rows ``secrets_store.stored_secrets`` reads.

    ``variables``: ``(key, encrypted value)``; values of sensitive keys are
    added. ``connections``: ``(encrypted password, encrypted extra JSON)``.
    A value ``decrypt`` refuses (``SecretsError``: another key) or that is not
    JSON is left out: no task could have read it either.
    """
    masker = SecretMasker()
    for key, token in variables:
        if is_sensitive_key(key):
            try:
                masker.add(decrypt(token))
            except SecretsError:
                pass
    for password, extra in connections:
        try:
            if password:
                masker.add(decrypt(password))
            if extra:
                masker.add_sensitive("extra", json.loads(decrypt(extra)))
        except (SecretsError, ValueError):
            pass
    return masker


def mask_or_none(masker: SecretMasker, text: str | None) -> str | None:
    """``text`` with secrets replaced by ``***`` (``None`` stays ``None``)."""
    return None if text is None else masker.mask(text)


__all__ = [
    "MAX_PENDING",
    "MIN_SECRET_LENGTH",
    "MaskingStream",
    "SecretMasker",
    "mask_or_none",
    "mask_sensitive",
    "masked_connection",
    "masked_variable",
    "masker_for_stored",
]
