"""A DAG's ``doc_md`` as HTML: Markdown rendered by ``markdown`` and sanitized by ``nh3`` (Ammonia).

The author's Markdown may carry raw HTML; only the tags and attributes in :data:`ALLOWED_TAGS` /
:data:`ALLOWED_ATTRIBUTES` survive (no ``<script>``, no ``style``, no event handlers, no
``javascript:`` links), so a DAG file can never run script in a viewer's browser.
"""

from __future__ import annotations

import markdown
import nh3
from markupsafe import Markup

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3",
        "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "span", "strong", "sub", "sup",
        "table", "tbody", "td", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
"""Tags kept from the rendered Markdown."""
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "td": {"align"}, "th": {"align"}}
"""Attributes kept, per tag (links get ``rel="noopener noreferrer"``)."""
MARKDOWN_EXTENSIONS = ["fenced_code", "tables", "sane_lists"]
"""Python-Markdown extensions: fenced code blocks and tables, as in Airflow's doc_md."""


def doc_md_html(text: str | None) -> Markup | None:
    """``text`` (Markdown, possibly with HTML) as sanitized HTML safe to put in a page; None when empty."""
    if not text or not text.strip():
        return None
    html = markdown.markdown(text, extensions=MARKDOWN_EXTENSIONS, output_format="html")
    clean = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )
    return Markup(clean)  # noqa: S704 - sanitized by nh3 just above


__all__ = ["ALLOWED_ATTRIBUTES", "ALLOWED_TAGS", "MARKDOWN_EXTENSIONS", "doc_md_html"]
