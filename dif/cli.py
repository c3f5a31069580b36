"""Small helpers shared by the three scripts: one-line argument errors, exit codes, devices."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

import torch

from .errors import DIFError

EXIT_USER_ERROR = 2


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (``prog: error: ...``) with exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without one is a user error."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DIFError("--device cuda was requested but no CUDA device is available (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise DIFError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def setup_logging(verbose: bool = False) -> None:
    """Warnings (skipped images, ...) go to stderr as one line each."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s: %(message)s",
                        stream=sys.stderr, force=True)
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a script's ``main``; a DIFError becomes ``error: ...`` on stderr and exit code 2."""
    try:
        return int(main(argv) or 0)
    except DIFError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USER_ERROR
    except SystemExit as exc:  # argparse's own exits (--help, usage errors)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USER_ERROR)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
