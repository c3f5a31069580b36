"""Evaluation on many processes and machines with PyTorch's own engine (torch.distributed).

Started by ``torchrun`` (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), each
process takes a deterministic shard of the image list (every WORLD_SIZE-th image from its rank),
streams it through the methods, and the per-image scores are gathered (``all_gather_object``, gloo
on CPU, NCCL on CUDA) and put back in the order of the image list, so that rank 0 writes exactly
the outputs of a single-process run. Without torchrun (or with one process) nothing changes.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """This process's place among the evaluating processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, n: int) -> list[int]:
        """Indices of this rank's share of n items: every ``size``-th from ``rank`` (balanced to
        within one item, independent of timing)."""
        return list(range(self.rank, n, self.size))

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


def init_world(device: torch.device) -> tuple[World, torch.device]:
    """The World from torchrun's environment (one process without it), with the process group
    started: NCCL when evaluating on CUDA (each process on GPU LOCAL_RANK), else gloo."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device
    import torch.distributed as dist

    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cpu":  # share the cores: each process takes its part of them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", size))))
    log.debug("rank %d of %d on %s", rank, size, device)
    return World(rank, size, local), device


def close_world(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def merge_shards(parts: Sequence[tuple[list[int], dict]]) -> tuple[list[int], dict]:
    """Per-rank (image indices, {name: scores}) -> (indices, {name: scores}) in image order."""
    import numpy as np

    idx = [i for p in parts for i in p[0]]
    order = np.argsort(np.asarray(idx, dtype=np.int64), kind="stable")
    names = list(parts[0][1]) if parts else []
    scores = {n: np.concatenate([np.asarray(p[1][n], dtype=np.float64) for p in parts])[order] if idx else np.empty(0)
              for n in names}
    return [idx[k] for k in order], scores


class ScoreStore:
    """Append-only per-image results, so that a killed evaluation continues where it stopped and a
    finished one recomputes nothing (``eval_dif.py --resume FILE``).

    One CSV row per (image, method): ``key,method,score,note,ok``. The key holds the condition
    (clean or a perturbation, and the re-encoding), the image path, its size and its mtime; the
    method column holds its name and digest (its checkpoint file and settings), so a changed image
    or checkpoint is scored again, and an unusable image is recorded once (method ``*``). The final ``ok`` column marks a complete row: a last line cut off by a kill is ignored.
    Each process appends to its own file (``FILE``, or ``FILE.rank<r>`` under torchrun) and reads
    them all, so a run may resume with another number of processes.
    """

    def __init__(self, path: str | os.PathLike, world: World = World()) -> None:
        from pathlib import Path

        self.path = Path(path)
        self.mine = self.path if not world.distributed else self.path.with_name(f"{self.path.name}.rank{world.rank}")
        self.entries: dict[tuple[str, str], tuple[str, str]] = {}
        names = sorted(os.listdir(self.path.parent)) if self.path.parent.is_dir() else []
        for name in names:  # FILE and every FILE.rank<r> (names compared as text: no glob patterns)
            if name == self.path.name or name.startswith(f"{self.path.name}.rank"):
                self._read(self.path.parent / name)
        self._fd: int | None = None

    def _read(self, f) -> None:
        import csv

        try:
            text = f.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            from .errors import DIFError, first_line, shown

            raise DIFError(f"cannot read --resume file {shown(f)} ({first_line(exc)})") from None
        for line in text.split("\n"):  # one record per line (keys and notes hold no line breaks)
            try:
                row = next(csv.reader([line]))
            except (csv.Error, StopIteration):
                continue
            if len(row) == 5 and row[4] == "ok":
                self.entries[(row[0], row[1])] = (row[2], row[3])

    @staticmethod
    def key(path, condition: str) -> str:
        """What makes a stored score valid, with the method's digest beside it: the condition, the
        file and its version."""
        try:
            st = os.stat(path)
            version = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            version = "missing"
        name = os.fspath(path).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"{condition}|{name}|{version}"

    def get(self, key: str, method: str) -> tuple[str, str] | None:
        return self.entries.get((key, method))

    def append(self, rows: list[tuple[str, str, str, str]]) -> None:
        """Append rows (key, method, score, note) in one write, flushed to the kernel."""
        import csv
        import io

        if not rows:
            return
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([[k, m, s, " ".join(n.splitlines()), "ok"] for k, m, s, n in rows])
        if self._fd is None:
            self.mine.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.mine, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            end = os.lseek(self._fd, 0, os.SEEK_END)
            if end and os.pread(self._fd, 1, end - 1) != b"\n":  # a line cut off by a kill: end it first
                os.write(self._fd, b"\n")
        os.write(self._fd, buf.getvalue().encode("utf-8", "surrogateescape"))
        for k, m, s, n in rows:
            self.entries[(k, m)] = (s, n)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
