"""Untrusted text (model outputs, file contents, user-chosen names) made inert for Markdown and HTML."""

from __future__ import annotations

import html
import re

# Markdown punctuation that can build a link or image ([ ] !), emphasis, a code span or a table cell anywhere in a
# line. (Line-start syntax such as # headings or - lists cannot inject anything, so it is left readable.)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]!|<>])")


def md_text(value: object) -> str:
    """Text that Markdown shows literally: HTML-escaped, then Markdown punctuation backslash-escaped."""
    # quote=False: &amp; &lt; &gt; hold no Markdown punctuation, so the second pass cannot break them.
    escaped = html.escape(str(value), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", escaped)
