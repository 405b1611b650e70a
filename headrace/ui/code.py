"""A DAG's code page (``GET /dags/{dag_id}/code``): its file highlighted server-side by Pygments, and its
``doc_md`` rendered (see :mod:`headrace.ui.docs`).

The file is the DAG's ``fileloc`` as it is on disk now. It is read only if it lies inside a folder the DAG
processor reads (``core.dags_folder``, and the bundled examples when ``core.load_examples``), after
resolving symbolic links, so a stored path can never make the UI show another file: anything else is the
403 error page. A file over :data:`MAX_SOURCE_BYTES` shows its beginning and says so.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from headrace import example_dags
from headrace.config import Settings
from headrace.exceptions import NotFound, PermissionDenied
from headrace.ui.render import dag_context, login_redirect, page, session_principal

router = APIRouter(include_in_schema=False)

EXAMPLE_DAGS = Path(example_dags.__file__).resolve().parent
"""The bundled example DAGs' folder (read by the DAG processor when ``core.load_examples``)."""

MAX_SOURCE_BYTES = 1024 * 1024
"""Most bytes of a DAG file the page shows (the rest is cut, with a note)."""

FORMATTER = HtmlFormatter(linenos="table", cssclass="source", lineanchors="L", anchorlinenos=True, wrapcode=True)
"""Pygments' HTML with CSS classes (the colours are in ``static/source.css``) and linkable line numbers."""


def dag_folders(settings: Settings) -> list[Path]:
    """The folders the DAG processor reads, resolved: ``core.dags_folder`` and, if loaded, the examples."""
    folders = [settings.dags_folder]
    if settings.get_bool("core", "load_examples"):
        folders.append(EXAMPLE_DAGS)
    return [f.resolve() for f in folders]


def read_dag_file(fileloc: str, folders: list[Path]) -> tuple[str, bool]:
    """The text of ``fileloc`` (UTF-8, bad bytes replaced) and whether it was cut at :data:`MAX_SOURCE_BYTES`.

    Raises ``PermissionDenied`` (403) if the file, symbolic links resolved, is outside ``folders``, and
    ``NotFound`` (404) if it cannot be read.
    """
    path = Path(fileloc).resolve()
    if not any(path.is_relative_to(folder) for folder in folders):
        raise PermissionDenied(f"{fileloc} is outside the DAGs folders; the UI shows only files there")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise NotFound(f"the DAG file {fileloc} cannot be read: {exc.strerror}") from None
    return data[:MAX_SOURCE_BYTES].decode("utf-8", errors="replace"), len(data) > MAX_SOURCE_BYTES


def highlighted(source: str) -> Markup:
    """``source`` (Python) as highlighted HTML: a table of linked line numbers and code, escaped by Pygments."""
    return Markup(highlight(source, PythonLexer(), FORMATTER))  # noqa: S704 - Pygments escapes the source


@router.get("/dags/{dag_id}/code")
def code_page(request: Request, dag_id: str) -> Response:
    """The DAG's file, highlighted, with its ``doc_md`` above it. 404 for an unknown DAG or a missing file,
    403 for a file outside the DAGs folders."""
    if session_principal(request) is None:
        return login_redirect(request)
    ctx = dag_context(request, dag_id)  # with doc_html, the DAG's doc_md rendered
    settings = request.app.state.settings
    assert isinstance(settings, Settings)
    source, cut = read_dag_file(str(ctx["fileloc"]), dag_folders(settings))
    return page(
        request,
        "code.html",
        title=f"Code · {dag_id}",
        tab="code",
        code_html=highlighted(source),
        cut=cut,
        max_bytes=MAX_SOURCE_BYTES,
        **ctx,
    )


__all__ = [
    "EXAMPLE_DAGS",
    "FORMATTER",
    "MAX_SOURCE_BYTES",
    "code_page",
    "dag_folders",
    "highlighted",
    "read_dag_file",
    "router",
]
