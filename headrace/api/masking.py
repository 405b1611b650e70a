"""Masking stored secrets in what the API returns (try logs, try errors).

The same :class:`~headrace.supervisor.masking.SecretMasker` the task process
uses, loaded with every secret in the metadata DB, so text a task wrote is
masked whatever the task itself had read.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from headrace.crypto import Encryptor, is_sensitive_key
from headrace.db.models import Connection, Variable
from headrace.exceptions import SecretsError
from headrace.supervisor.masking import SecretMasker


def load_masker(session: Session, encryptor: Encryptor) -> SecretMasker:
    """A masker knowing every stored secret: values of variables with a sensitive key, connection passwords
    and sensitive connection extras. A value that cannot be decrypted (another key) is left out: no task
    could have read it either."""
    masker = SecretMasker()
    for key, token in session.execute(select(Variable.key, Variable.value)):
        if is_sensitive_key(key):
            try:
                masker.add(encryptor.decrypt(token))
            except SecretsError:
                pass
    for password, extra in session.execute(select(Connection.password, Connection.extra)):
        try:
            if password:
                masker.add(encryptor.decrypt(password))
            if extra:
                masker.add_sensitive("extra", json.loads(encryptor.decrypt(extra)))
        except (SecretsError, ValueError):
            pass
    return masker


def mask_or_none(masker: SecretMasker, text: str | None) -> str | None:
    """``text`` with secrets replaced by ``***`` (``None`` stays ``None``)."""
    return None if text is None else masker.mask(text)


__all__ = ["load_masker", "mask_or_none"]
