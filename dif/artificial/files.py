"""The text files of artificial fingerprints: their ``name bits`` lists and a user database."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DIFError, shown


def read_fingerprint_file(path: Path, length: Optional[int] = None) -> dict[str, np.ndarray]:
    """``name bits`` lines (their embedded/detected_fingerprints.txt) -> {name: bits}."""
    from .bits import parse_bits

    if not path.is_file():
        raise DIFError(f"fingerprint file not found: {shown(path)}")
    out = {}
    for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DIFError(f"{shown(path)} line {i}: expected 'name bits'")
        out[parts[0]] = parse_bits(parts[1], length, f"{shown(path)} line {i}: ")
    if not out:
        raise DIFError(f"{shown(path)} holds no fingerprints")
    return out


def read_database(path: Path, length: Optional[int] = None) -> tuple[list[str], np.ndarray]:
    """A CSV of user,bits (header optional) -> (users, U x n bits)."""
    from .bits import parse_bits

    if not path.is_file():
        raise DIFError(f"database not found: {shown(path)}")
    try:
        rows = list(csv.reader(io.StringIO(path.read_text())))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DIFError(f"{shown(path)} is not a readable CSV ({exc})") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0]] == ["user", "bits"]:
        rows = rows[1:]
    users, bits = [], []
    for i, r in enumerate(rows, 1):
        if len(r) != 2:
            raise DIFError(f"{shown(path)} row {i}: expected two columns user,bits")
        users.append(r[0].strip())
        bits.append(parse_bits(r[1], length, f"{shown(path)} row {i}: "))
    if not users:
        raise DIFError(f"{shown(path)} holds no users")
    if len(set(users)) != len(users):
        raise DIFError(f"{shown(path)} names a user twice")
    return users, np.stack(bits)
