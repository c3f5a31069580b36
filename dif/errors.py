"""Errors that mean "the user gave us something wrong" (exit code 2 in the scripts)."""
from __future__ import annotations

import os
import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class DIFError(Exception):
    """A user-facing error: bad arguments, paths, images or checkpoints.

    Scripts print ``error: <message>`` on one line and exit with code 2.
    """


class ImageReadError(DIFError):
    """An image that cannot be used (unreadable, truncated, too large, too small, not finite)."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (ANSI escapes removed, at most ``limit``
    characters), or its type name when it has no message: what a one-line error can quote."""
    text = _ANSI.sub("", str(exc)).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def shown(path: os.PathLike | str) -> str:
    """A path as printable text: bytes that are not UTF-8 (surrogate escapes) become ``\\xNN``
    escapes, so a hostile file name can be printed, logged and written to a CSV."""
    s = os.fspath(path)
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") if isinstance(s, str) else repr(s)
