"""Small helpers shared by the scripts and benchmarks: one-line argument errors, the common
flags, exit codes, devices."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Optional, Sequence

import torch

from .errors import DIFError, first_line

EXIT_USER_ERROR = 2


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with every flag's default, except where the help already says its own or there is
    none (a default decided at run time would otherwise read "(default: ...) (default: None)")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default:" in text or action.default in (None, False, "", argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class CompactFormatter(DefaultsFormatter):
    """``--help`` that keeps an option and its help on one line where it fits (100 columns at most)."""

    def __init__(self, prog: str) -> None:
        import shutil

        super().__init__(prog, max_help_position=32, width=min(100, max(80, shutil.get_terminal_size().columns)))


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (``prog: error: ...``) with exit code 2, and which
    accepts positionals after options (``CHECK DATA --quiet 2``)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        if any(isinstance(a, argparse._SubParsersAction) for a in self._actions):  # argparse cannot intermix these
            return super().parse_args(args, namespace)
        return self.parse_intermixed_args(args, namespace)


def int_in(low: int, high: Optional[int] = None) -> Callable[[str], int]:
    """argparse type: a whole number in [low, high]."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid whole number: {text!r}") from None
        if v < low or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"must be in [{low}, {'inf' if high is None else high}], got {v}")
        return v
    parse.__name__ = "whole number"
    return parse


def add_common_arguments(p: argparse.ArgumentParser, *, device: bool = True, seed: bool = False, quiet: bool = True,
                         extractor: Optional[str] = None, workers: bool = False,
                         eval_batch: Optional[int] = None) -> None:
    """The flags every script spells the same way. ``extractor``: its help text (None: no flag);
    ``eval_batch``: the default of ``--eval-batch`` (images per scoring batch; None: no flag)."""
    if device:
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to compute")
    if seed:
        p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0, help="seed of everything random")
    if extractor is not None:
        p.add_argument("--extractor", default=None, metavar="SPEC", help=extractor)
    if eval_batch is not None:
        p.add_argument("--eval-batch", dest="batch", type=int_in(1, 65_536), default=eval_batch, metavar="N",
                       help="images per scoring batch")
    if workers:
        p.add_argument("--workers", type=int_in(0, 64), default=None, metavar="N",
                       help="image decoding processes (default: 2 if over one batch, else 0)")
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress bars")


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


def prog_name(module: str) -> str:
    """What ``--help`` calls the program: the installed command's name (``dif-demo``) when run as
    one, else ``python -m MODULE``."""
    import os

    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name and not name.endswith(".py") and name != "-c" else f"python -m {module}"


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a script's ``main``; a DIFError becomes ``error: ...`` on stderr and exit code 2."""
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 must not crash a print
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    try:
        return int(main(argv) or 0)
    except DIFError as exc:
        sys.stderr.write(f"error: {first_line(exc, limit=1000)}\n")
        return EXIT_USER_ERROR
    except PermissionError as exc:  # a file or folder of the user's that this process may not read or write
        sys.stderr.write(f"error: permission denied: {first_line(exc, limit=1000)}\n")
        return EXIT_USER_ERROR
    except SystemExit as exc:  # argparse's own exits (--help, usage errors)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USER_ERROR)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
