"""SecretMasker and MaskingStream: what reaches the try's log once a secret is known."""

from __future__ import annotations

import io
import logging

from headrace.masking import MAX_PENDING, MaskingStream, SecretMasker


def _stream() -> tuple[MaskingStream, io.StringIO, SecretMasker]:
    target = io.StringIO()
    masker = SecretMasker()
    return MaskingStream(target, masker), target, masker  # type: ignore[arg-type]


def test_masker_replaces_secrets_and_their_quoted_forms() -> None:
    masker = SecretMasker()
    assert not masker and masker.mask("nothing yet") == "nothing yet"
    masker.add("abc")  # too short to mask without mangling ordinary text
    masker.add("p@ss'w\"rd")
    masker.add(None)
    masker.add(12345678)
    assert masker
    assert masker.mask("abc p@ss'w\"rd 12345678") == "abc *** ***"
    assert masker.mask(repr("p@ss'w\"rd")) == "'***'"  # repr escapes a quote
    assert masker.mask('{"k": "p@ss\'w\\"rd"}') == '{"k": "***"}'  # JSON escapes the other
    assert masker.mask("scheme://u:p%40ss%27w%22rd@h") == "scheme://u:***@h"  # URL-quoted


def test_longer_secret_masked_whole_and_multiline_per_line() -> None:
    masker = SecretMasker()
    masker.add("token")
    masker.add("token-with-more")
    masker.add("first line\nsecond line")
    assert masker.mask("token-with-more token") == "*** ***"
    assert masker.mask("a first line b\nsecond line") == "a *** b\n***"


def test_add_sensitive_walks_keys() -> None:
    masker = SecretMasker()
    masker.add_sensitive(
        "extra", {"region": "eu-west", "client_secret": "cs-1234", "credentials": {"user": "svc-user", "n": [11112222]}}
    )
    masker.add_sensitive("my_api_key", "key-9999")
    masker.add_sensitive("plain", "visible")
    assert masker.mask("eu-west cs-1234 svc-user 11112222 key-9999 visible") == "eu-west *** *** *** *** visible"


def test_stream_masks_per_line_across_writes_and_flushes() -> None:
    stream, target, masker = _stream()
    stream.write("before any secret\n")
    assert target.getvalue() == "before any secret\n"  # straight through
    masker.add("supersecret")
    stream.write("split super")
    stream.flush()  # a flush does not write half a line
    assert target.getvalue() == "before any secret\n"
    stream.write("secret here\nnext ")
    assert target.getvalue() == "before any secret\nsplit *** here\n"
    stream.write("supersecret")
    stream.drain()
    assert target.getvalue() == "before any secret\nsplit *** here\nnext ***"


def test_stream_under_logging_and_print() -> None:
    stream, target, masker = _stream()
    masker.add("hunter22")
    logger = logging.getLogger("test_masking")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logger.warning("password is %s", "hunter22")
        print("print", "hunter22", sep=":", file=stream)
    finally:
        logger.removeHandler(handler)
    assert target.getvalue() == "password is ***\nprint:***\n"


def test_a_very_long_partial_line_is_written() -> None:
    stream, target, masker = _stream()
    masker.add("secret-value")
    stream.write("x" * (MAX_PENDING + 1) + "secret-value")
    assert target.getvalue() == "x" * (MAX_PENDING + 1) + "***"
