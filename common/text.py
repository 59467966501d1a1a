"""One-line text for errors and logs: the single copy every package uses (issue 13: one copy of each helper)."""

from __future__ import annotations

ONE_LINE_LIMIT = 400


def one_line(text: object, limit: int = ONE_LINE_LIMIT) -> str:
    """`text` with every run of white space folded to one space, cut to `limit` characters."""
    return " ".join(str(text).split())[:limit]


def exception_line(exc: BaseException, limit: int = ONE_LINE_LIMIT) -> str:
    """An exception as one line: a PrefLabError's own message, anything else prefixed with its type."""
    from common.errors import PrefLabError

    text = one_line(exc, limit) or type(exc).__name__
    if isinstance(exc, PrefLabError):
        return text
    return one_line(f"{type(exc).__name__}: {text}", limit)


def first_line(exc: BaseException) -> str:
    """An exception's first line of text (library errors append hints and tracebacks below it), else its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
