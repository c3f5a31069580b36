"""Model lineage: finding the fingerprints and generators of a cross-detection matrix (computed
by ``dif.evaluate.cross_detection``), the similarity of fingerprints themselves (allowing for
circular shifts), and the lineage decision (is a candidate model descended from a suspected
parent? a p-value against a pool of unrelated models): ``python -m dif.lineage decide``.

This module sits beside the harness (it streams images through ``dif.evaluate``); nothing below
it imports it."""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .data import center_crop, is_labelled_dir
from .errors import DIFError, first_line, shown
from .methods import Method, is_check_dir, load_method
from .spectrum import circular_ncc

log = logging.getLogger(__name__)


def _subfolders(root: str | Path, keep: Callable[[Path], bool], what: str, holding: str) -> dict[str, Path]:
    root = Path(root)
    if not root.is_dir():
        raise DIFError(f"{what} not found: {shown(root)}")
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise DIFError(f"cannot read {shown(root)} ({first_line(exc)})") from None
    found = {p.name: p for p in entries if p.is_dir() and keep(p)}
    if not found:
        raise DIFError(f"{shown(root)} has no {holding}")
    return found


def find_fingerprints(root: str | Path) -> dict[str, Path]:
    """{name: CHECK_DIR} for every sub-folder of ``root`` holding a trained method (DIF
    checkpoints, or a config.json naming a registered method)."""
    return _subfolders(root, is_check_dir, "fingerprint folder", "sub-folders with chk_<epoch>.pt fingerprints "
                       "(or other trained methods)")


def find_generators(root: str | Path) -> dict[str, Path]:
    """{name: folder} for every sub-folder of ``root`` with 0_real/ and 1_fake/."""
    return _subfolders(root, is_labelled_dir, "data root", "generator sub-folders with 0_real/ and 1_fake/")


def load_methods(root: str | Path, options=None, device: str | torch.device = "cpu") -> dict[str, Method]:
    """Every trained method under ``root`` (the latest checkpoint of each)."""
    return {n: load_method(p, options=options, device=device) for n, p in find_fingerprints(root).items()}


def fingerprint_similarity(fps: dict[str, torch.Tensor]) -> tuple[list[str], np.ndarray]:
    """Peak |normalised cross-correlation| over all circular shifts between every pair of
    fingerprints (cropped to their common size). 1 on the diagonal."""
    names = list(fps)
    h = min(int(f.shape[-2]) for f in fps.values())
    w = min(int(f.shape[-1]) for f in fps.values())
    crop = {n: center_crop(f, (h, w)).reshape(1, -1, h, w).float() for n, f in fps.items()}
    sim = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            ncc = circular_ncc(crop[a], crop[names[j]])
            sim[i, j] = sim[j, i] = float(ncc.abs().max())
    return names, sim


# ----------------------------------------------------------------------------- the lineage decision
#
# Is model B a descendant of model A? A's fingerprint scores B's images; the mean score is compared
# with the mean scores of a pool of models known to be unrelated to A (the null). The null is
# model-level on purpose: images of one model are not independent draws (they share the model's
# traces), so a per-image test would call any model whose images happen to score a little high
# "related" with a tiny p-value. Two p-values:
#   rank: (1 + #{pool >= B}) / (1 + m), exact when B and the pool models are exchangeable under
#         the null (B unrelated to A, drawn like the pool), whatever the scores' distribution;
#         it cannot go below 1 / (1 + m), so a pool of m models decides at alpha >= 1 / (1 + m);
#   t:    B's statistic as a new draw from a normal fitted to the pool (the predictive Student t
#         with m - 1 degrees of freedom): smaller p-values from small pools, valid if the null is
#         roughly normal. Both are reported; ``test`` picks the one that decides.

TESTS = ("rank", "t")


@dataclass
class LineageDecision:
    """The answer for one suspected parent and one candidate model."""

    statistic: float            # the candidate's mean score under the parent's fingerprint
    pool: list[float]           # the same for each unrelated model
    pool_names: list[str]
    p_rank: float
    p_t: float
    test: str
    alpha: float
    related: bool
    likeness: Optional[float]   # (statistic - real centre) / (fake centre - real centre): 1 = like the parent's own
    images: int

    @property
    def p_value(self) -> float:
        return self.p_rank if self.test == "rank" else self.p_t

    def to_json(self) -> dict:
        d = asdict(self)
        d["p_value"] = self.p_value
        return d


def rank_p_value(stat: float, pool: Sequence[float]) -> float:
    """(1 + #{pool >= stat}) / (1 + m): the permutation p-value of one candidate among m null models."""
    pool = np.asarray(pool, dtype=np.float64)
    return float((1 + np.sum(pool >= stat)) / (1 + len(pool)))


def t_p_value(stat: float, pool: Sequence[float]) -> float:
    """One-sided p-value of ``stat`` as a new draw from a normal fitted to ``pool`` (predictive
    Student t, m - 1 degrees of freedom). Needs m >= 2 distinct values."""
    from scipy.stats import t as student_t

    pool = np.asarray(pool, dtype=np.float64)
    m = len(pool)
    if m < 2:
        raise DIFError("the t test needs at least 2 pool models")
    sd = float(pool.std(ddof=1))
    if not sd > 0:
        return 0.0 if stat > pool[0] else 1.0
    z = (stat - float(pool.mean())) / (sd * math.sqrt(1 + 1 / m))
    return float(student_t.sf(z, df=m - 1))


def smallest_rank_p(m: int) -> float:
    return 1.0 / (1 + m)


def decide(stat: float, pool: Sequence[float], alpha: float = 0.05, test: str = "rank",
           pool_names: Optional[Sequence[str]] = None, likeness: Optional[float] = None, images: int = 0
           ) -> LineageDecision:
    """Related when the chosen test's p-value is at most ``alpha`` (the false-positive rate on
    models drawn like the pool)."""
    if test not in TESTS:
        raise DIFError(f"unknown test {test!r} (known: {', '.join(TESTS)})")
    if not 0 < alpha < 1:
        raise DIFError(f"alpha must be in (0, 1), got {alpha}")
    pool = [float(v) for v in pool]
    if len(pool) < 2:
        raise DIFError(f"the pool needs at least 2 unrelated models, got {len(pool)}")
    if not all(math.isfinite(v) for v in pool + [float(stat)]):
        raise DIFError("a model's statistic is not finite")
    pr, pt = rank_p_value(stat, pool), t_p_value(stat, pool)
    p = pr if test == "rank" else pt
    names = list(pool_names) if pool_names is not None else [str(i) for i in range(len(pool))]
    return LineageDecision(float(stat), pool, names, pr, pt, test, alpha, bool(p <= alpha), likeness, images)


def likeness_of(method: Method, stat: float) -> Optional[float]:
    """Where a mean (oriented) score falls between the fingerprint's real (0) and fake (1) centres."""
    f = method.metric_fields()
    if "mu_real" not in f or "mu_fake" not in f:
        return None
    sign = float(method.display_scores(np.array([1.0]))[0])  # display = sign * oriented, sign +-1
    lo, hi = sign * float(f["mu_real"]), sign * float(f["mu_fake"])
    return None if hi == lo else float((stat - lo) / (hi - lo))


def model_images(folder: str | Path, limit: Optional[int] = None) -> list[Path]:
    """The images of one model: ``folder/1_fake`` when the folder is a labelled set, else the
    images directly in ``folder`` (the first ``limit`` by name)."""
    from .data import list_images

    folder = Path(folder)
    if not folder.is_dir():
        raise DIFError(f"model image folder not found: {shown(folder)}")
    src = folder / "1_fake" if is_labelled_dir(folder) else folder
    try:
        paths = list_images(src)
    except OSError as exc:
        raise DIFError(f"cannot read {shown(src)} ({first_line(exc)})") from None
    if not paths:
        raise DIFError(f"{shown(src)} holds no images")
    return paths[:limit] if limit else paths


def pool_folders(root: str | Path) -> dict[str, Path]:
    """{name: folder} for every sub-folder of ``root`` with images (or a 1_fake/ of images)."""
    from .data import list_images

    def has_images(p: Path) -> bool:
        try:
            return bool(list_images(p / "1_fake" if is_labelled_dir(p) else p))
        except OSError:
            return False
    return _subfolders(root, has_images, "pool folder", "sub-folders of unrelated models' images")


def model_statistics(methods: dict[str, Method], folders: dict[str, Path], images: Optional[int] = None,
                     perturbation: Optional[str] = None, batch_size: int = 32, workers: Optional[int] = 0,
                     progress: bool = False) -> dict[str, dict[str, tuple[float, int]]]:
    """{method: {model: (mean oriented score of the model's images, images scored)}}: each model's
    images are decoded once and their residuals shared by methods with the same extractor."""
    from .evaluate import score_images
    from .robustness import compose, get_perturbation

    transforms = {m.input_transform()[1] for m in methods.values()}
    if len(transforms) > 1:
        raise DIFError(f"the fingerprints were trained with different --reencode settings {sorted(transforms)}")
    base, _ = next(iter(methods.values())).input_transform()
    pert = get_perturbation(perturbation) if perturbation else None
    out: dict[str, dict[str, tuple[float, int]]] = {k: {} for k in methods}
    for name, folder in folders.items():
        paths = model_images(folder, images)
        s = score_images(methods, paths, [1] * len(paths), compose(base, pert), allow_smaller=pert is not None,
                         batch_size=batch_size, workers=workers, progress=progress, desc=name)
        if len(s) == 0:
            raise DIFError(f"{shown(folder)}: no usable images ({next(iter(methods.values())).input_requirement()})")
        for k in methods:
            out[k][name] = (float(np.mean(s.scores[k])), len(s))
    return out


# ----------------------------------------------------------------------------- command line

def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse
    import json

    from .atomic import write_text_atomic
    from .cli import DefaultsFormatter, Parser, add_common_arguments, int_in, prog_name, resolve_device, setup_logging
    from .robustness import get_perturbation

    p = Parser(prog=prog_name("dif.lineage"), description="Model lineage from the command line.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    d = sub.add_parser("decide", formatter_class=DefaultsFormatter,
                       help="is a candidate model descended from a suspected parent? (a p-value against a pool of "
                            "unrelated models)",
                       description="Score the candidate model's images and each pool model's images with the "
                                   "parent's fingerprint; the candidate is called related when its mean score is "
                                   "higher than the pool's at false-positive rate --alpha (for candidates drawn like "
                                   "the pool: choose the pool to match the models you need told apart, e.g. other "
                                   "seeds of the parent's recipe). See docs/lineage.md for the measured rates.")
    d.add_argument("parent", help="the suspected parent's fingerprint (a train_dif.py checkpoint folder)")
    d.add_argument("candidate", help="folder of the candidate model's images (or a labelled folder: its 1_fake/)")
    d.add_argument("pool", help="folder whose sub-folders each hold one unrelated model's images (or 1_fake/)")
    d.add_argument("--alpha", type=float, default=0.05, help="false-positive rate of the decision, in (0, 1)")
    d.add_argument("--test", choices=TESTS, default="rank",
                   help="which p-value decides: rank (exact, needs at least 1/alpha - 1 pool models) or t (normal "
                        "null fitted to the pool)")
    d.add_argument("--images", type=int_in(1, 10**7), default=None, help="score at most this many images per model "
                                                                           "(the first by name; default all)")
    d.add_argument("--perturb", default=None, help="a perturbation applied to every model's images alike (e.g. "
                                                   "jpeg90), to measure the decision under it")
    d.add_argument("--json", type=Path, default=None, help="write the decision here as JSON")
    add_common_arguments(d, workers=True, eval_batch=32)
    args = p.parse_args(argv)
    setup_logging()
    if not 0 < args.alpha < 1:
        raise DIFError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.perturb:
        get_perturbation(args.perturb)  # a bad name fails before any work
    if args.json is not None:
        from .atomic import check_output_file
        check_output_file(args.json, "--json")
    device = resolve_device(args.device)
    method = load_method(args.parent, device=device)
    pool = pool_folders(args.pool)
    cand = Path(args.candidate)
    model_images(cand, 1)  # exists and holds images
    same = [n for n, f in pool.items() if f.resolve() == cand.resolve()]
    if same:
        raise DIFError(f"the candidate {shown(cand)} is also in the pool (as {same[0]!r}): the pool must hold "
                       "other models")
    if args.test == "rank" and smallest_rank_p(len(pool)) > args.alpha:
        raise DIFError(f"a pool of {len(pool)} models cannot reach --alpha {args.alpha:g} with the rank test (smallest "
                       f"p-value 1/{len(pool) + 1}); add models to the pool (at least {math.ceil(1 / args.alpha) - 1}) "
                       "or use --test t")
    kw = dict(images=args.images, perturbation=args.perturb, batch_size=args.batch, workers=args.workers,
              progress=not args.quiet)
    stats = model_statistics({"parent": method}, {"candidate": cand, **pool}, **kw)["parent"]
    stat, n = stats.pop("candidate")
    pool_stats = stats
    res = decide(stat, [v for v, _ in pool_stats.values()], args.alpha, args.test, list(pool_stats),
                 likeness_of(method, stat), n)
    pool_v = np.array(res.pool)
    print(method.summary_line())
    print(f"candidate {shown(cand)}: mean score {stat:.5f} over {n} images"
          + (f" (likeness to the parent {res.likeness:.2f}: 0 real centre, 1 the parent's own)" if res.likeness is not None
             else ""))
    print(f"pool: {len(pool_v)} unrelated models, mean score {pool_v.mean():.5f} +- {pool_v.std(ddof=1):.5f} "
          f"(max {pool_v.max():.5f}, {res.pool_names[int(pool_v.argmax())]})"
          + (f"; images {args.perturb}" if args.perturb else ""))
    print(f"p-value: rank {res.p_rank:.4f}, t {res.p_t:.3g}; decided by {res.test} at alpha {res.alpha:g}: "
          + ("RELATED (descended from the parent, or sharing its traces)" if res.related else "not shown related"))
    if args.json is not None:
        out = dict(res.to_json(), parent=str(args.parent), candidate=str(cand), pool_root=str(args.pool),
                   perturb=args.perturb, fingerprint=method.info())
        write_text_atomic(args.json, json.dumps(out, indent=1) + "\n")
    return 0


def cli() -> int:
    """The installed command's entry point (``dif-lineage``)."""
    from .cli import run_main

    return run_main(main)


if __name__ == "__main__":
    import sys

    sys.exit(cli())
