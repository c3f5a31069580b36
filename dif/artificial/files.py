r"""The text files of artificial fingerprints: their ``name bits`` lists and a user database.

File names are kept exactly through a ``name bits`` line: a name that is printable UTF-8 without a
backslash is written as it is (the authors' format), and any other is written with backslash
escapes (``\\``, ``\n``, ``\r``, ``\t``, and ``\xNN`` for a byte that is not UTF-8), which the
reader undoes. So ``detect --fingerprints`` reads back what ``embed`` wrote, for any file name.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DIFError, first_line, shown

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|[\\nrt])")


def escape_name(name: str) -> str:
    """A file name (``os.fsdecode`` form: undecodable bytes as surrogates) as one line of text."""
    out = []
    for ch in name:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif not ch.isprintable() and ch != " ":
            out.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def unescape_name(text: str) -> str:
    """The inverse of ``escape_name``: the name as ``os.fsdecode`` gives it."""
    if "\\" not in text:
        return text
    out, pos = bytearray(), 0
    for m in _UNESCAPE.finditer(text):
        out += text[pos:m.start()].encode("utf-8", "surrogateescape")
        t = m.group(1)
        out += {"\\": b"\\", "n": b"\n", "r": b"\r", "t": b"\t"}[t] if len(t) == 1 else bytes([int(t[1:], 16)])
        pos = m.end()
    out += text[pos:].encode("utf-8", "surrogateescape")
    return bytes(out).decode("utf-8", "surrogateescape")


def fingerprint_lines(names: list[str], bits: list[str]) -> str:
    """``name bits`` lines, names escaped where needed."""
    return "".join(f"{escape_name(n)} {b}\n" for n, b in zip(names, bits))


def read_fingerprint_file(path: Path, length: Optional[int] = None) -> dict[str, np.ndarray]:
    """``name bits`` lines (their embedded/detected_fingerprints.txt, or ours) -> {name: bits}."""
    from .bits import parse_bits

    if not path.is_file():
        raise DIFError(f"fingerprint file not found: {shown(path)}")
    try:
        text = path.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise DIFError(f"cannot read {shown(path)} ({first_line(exc)})") from None
    out = {}
    for i, line in enumerate(text.split("\n"), 1):
        line = line.rstrip()  # the bits end the line (CRLF too)
        if not line.strip():
            continue
        cut = max(line.rfind(" "), line.rfind("\t"))  # one separator: a name may hold (even end in) spaces
        if cut <= 0:
            raise DIFError(f"{shown(path)} line {i}: expected 'name bits'")
        out[unescape_name(line[:cut])] = parse_bits(line[cut + 1:], length, f"{shown(path)} line {i}: ")
    if not out:
        raise DIFError(f"{shown(path)} holds no fingerprints")
    return out


def read_database(path: Path, length: Optional[int] = None) -> tuple[list[str], np.ndarray]:
    """A CSV of user,bits (header optional) -> (users, U x n bits)."""
    from .bits import parse_bits

    if not path.is_file():
        raise DIFError(f"database not found: {shown(path)}")
    try:  # utf-8-sig: a spreadsheet's byte-order mark; newline="": CRLF rows as the csv module wants them
        rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))
    except OSError as exc:
        raise DIFError(f"cannot read {shown(path)} ({first_line(exc)})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DIFError(f"{shown(path)} is not a readable UTF-8 CSV ({first_line(exc)})") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0]] == ["user", "bits"]:
        rows = rows[1:]
    users, bits = [], []
    for i, r in enumerate(rows, 1):
        if len(r) != 2:
            raise DIFError(f"{shown(path)} row {i}: expected two columns user,bits")
        if not r[0].strip():
            raise DIFError(f"{shown(path)} row {i}: the user name is empty")
        users.append(r[0].strip())
        bits.append(parse_bits(r[1], length, f"{shown(path)} row {i}: "))
    if not users:
        raise DIFError(f"{shown(path)} holds no users")
    if len(set(users)) != len(users):
        raise DIFError(f"{shown(path)} names a user twice")
    return users, np.stack(bits)
