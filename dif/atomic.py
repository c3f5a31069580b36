"""Safe output: atomic file writes, output locations checked before any work, and run folders
that are swapped in whole (a run either completes or leaves the earlier state untouched)."""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from .errors import DIFError, first_line, shown


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    If the body raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    return write_atomic(path, lambda p: p.write_bytes(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8; unpaired surrogates from undecodable file names escaped) atomically."""
    return write_bytes_atomic(path, text.encode("utf-8", "backslashreplace"))


def csv_text(header: list[str], rows: Iterable[list]) -> str:
    """CSV with a header row; any file name can be held (quoted by the csv module, undecodable
    bytes written as ``\\xNN`` escapes)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows([[shown(v) if isinstance(v, (str, os.PathLike)) else v for v in row] for row in rows])
    return buf.getvalue()


def write_csv_atomic(path: str | os.PathLike, header: list[str], rows: list[list]) -> Path:
    """A CSV file with a header row, written atomically."""
    return write_text_atomic(path, csv_text(header, rows))


def torch_bytes(payload) -> bytes:
    """``torch.save`` into memory: the archive's inner folder is then always named ``archive``
    (saving to a path records the file's name inside), so the same payload gives the same bytes."""
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def save_torch_atomic(path: str | os.PathLike, payload) -> Path:
    """``torch.save`` atomically and byte-reproducibly."""
    return write_bytes_atomic(path, torch_bytes(payload))


# ----------------------------------------------------------------------------- checks before work

def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder: Path, what: str) -> None:
    """Create and delete a file in ``folder`` (permission bits do not tell the truth for root or
    on read-only mounts)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dif-write-test.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise DIFError(f"cannot write {what}: {shown(folder)} is not writable ({first_line(exc)})") from None


def check_output_file(path: Optional[str | os.PathLike], flag: str) -> None:
    """Raise DIFError unless ``path`` can be written as a file (missing folders are created).
    Called before any work so that minutes of computing are never lost to a bad path."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise DIFError(f"{flag} {shown(path)} is a folder; give a file name")
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise DIFError(f"{flag} {shown(path)}: {shown(base)} is not a folder")
    _probe_writable(base, f"{flag} {shown(path)}")


def check_output_dir(path: Optional[str | os.PathLike], flag: str) -> None:
    """Raise DIFError unless ``path`` is (or can be created as) a writable folder."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DIFError(f"{flag} {shown(path)} exists and is not a folder")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise DIFError(f"{flag} {shown(path)}: {shown(base)} is not a folder")
    _probe_writable(base, f"{flag} {shown(path)}")


def check_distinct(paths: dict[str, Optional[str | os.PathLike]]) -> None:
    """Two output flags naming the same file would overwrite each other."""
    seen: dict[Path, str] = {}
    for flag, p in paths.items():
        if p is None:
            continue
        key = Path(p).resolve()
        if key in seen:
            raise DIFError(f"{seen[key]} and {flag} name the same file: {shown(p)}")
        seen[key] = flag


# ----------------------------------------------------------------------------- run folders

class RunFolder:
    """A training run's output folder, written whole or not at all.

    The run writes into a temporary sibling (``.NAME.partial-XXXX``); ``commit`` swaps it in
    place of the final folder only when everything is written, so a killed run leaves the earlier
    run untouched and two runs' files never mix. A lock (``.NAME.lock`` beside the folder, an
    ``flock`` the kernel drops when the process dies) refuses a second run into the same folder.

    Without ``overwrite`` the final folder must be absent or empty. With it, the old folder is
    replaced, but only when it holds nothing but files ``owned`` says a run writes (a user's other
    files are never deleted).
    """

    def __init__(self, final: str | os.PathLike, overwrite: bool, owned: Callable[[str], bool],
                 what: str = "CHECK_DIR") -> None:
        self.final = Path(final)
        self.overwrite = overwrite
        self.owned = owned
        self.what = what
        self.tmp: Optional[Path] = None
        self._made: list[Path] = []  # parent folders this run created (removed again if it fails)
        self._lock_fd: Optional[int] = None
        self._lock_path = self.final.parent / f".{self.final.name}.lock"

    def __enter__(self) -> "RunFolder":
        self.prepare()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        self.release()

    def prepare(self) -> Path:
        """Every check, the lock and the temporary folder, before any work; returns the folder
        the run writes into."""
        final, what = self.final, self.what
        if final.exists() and not final.is_dir():
            raise DIFError(f"{what} exists and is not a folder: {shown(final)}")
        if final.is_dir():
            try:
                names = sorted(os.listdir(final))
            except OSError as exc:
                raise DIFError(f"cannot read {what} {shown(final)} ({first_line(exc)})") from None
            if names and not self.overwrite:
                raise DIFError(f"{shown(final)} already holds {len(names)} file(s) of an earlier run; "
                               f"choose another {what} or pass --overwrite")
            foreign = [n for n in names if not self.owned(n)]
            if foreign:
                raise DIFError(f"{shown(final)} holds files a run did not write ({', '.join(shown(n) for n in foreign[:3])}"
                               f"{', ...' if len(foreign) > 3 else ''}); --overwrite would delete them: move them or "
                               f"choose another {what}")
        parent = final.parent
        missing = [p for p in [parent, *parent.parents] if not p.exists()]
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._made = missing
        except OSError as exc:
            raise DIFError(f"cannot create {what} {shown(final)} ({first_line(exc)})") from None
        _probe_writable(parent, f"{what} {shown(final)}")
        self._lock()
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=parent))
        return self.tmp

    def _lock(self) -> None:
        import fcntl

        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise DIFError(f"another run is writing to {shown(self.final)} (lock {shown(self._lock_path)}); "
                               f"wait for it or choose another {self.what}") from None
            raise DIFError(f"cannot lock {shown(self._lock_path)} ({first_line(exc)})") from None
        try:
            same = os.stat(self._lock_path).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if not same:  # the holder before us removed the file between our open and our lock: retry
            os.close(fd)
            return self._lock()
        self._lock_fd = fd

    def commit(self) -> Path:
        """Swap the finished run in place of the final folder."""
        assert self.tmp is not None, "prepare() first"
        final = self.final
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.rmdir(old)
            os.rename(final, old)
        os.rename(self.tmp, final)
        self.tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def abort(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        self.release()
        for folder in self._made:  # nearest first: a failed run leaves no empty folder behind
            try:
                folder.rmdir()
            except OSError:
                break
        self._made = []

    def release(self) -> None:
        if self._lock_fd is not None:
            try:
                os.unlink(self._lock_path)
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None
