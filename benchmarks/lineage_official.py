#!/usr/bin/env python3
"""The lineage decision applied to the authors' released fingerprints and the shared sample images.

    python benchmarks/lineage_official.py [--json OUT.json] [--figure repo_images/lineage_official.png]

Every released fingerprint (../shared/data/dif_official/checks, 13 generators) scores the generated
images of every model the shared data holds: SD 1.4, GLIDE, DALL-E 2 (dif_official/samples, 10
each, PNG) and five CNNDetection generators (20 each, JPEG). For each (fingerprint, model) pair the
decision of ``dif.lineage.decide`` takes the other seven models as the pool of unrelated models:
with 7 the rank test cannot go below 1/8, so the t test decides (alpha 0.05), and both p-values
are printed. Two conditions: the images as shipped, and every image re-saved as JPEG 90 (so that
a format difference between the PNG and JPEG sets is not read as lineage). The paper's relations:
each fingerprint on its own generator's images, and Midjourney behaving like a fine-tuned Stable
Diffusion 1.x (its fingerprint on the SD 1.4 images).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from _common import shared_data


def main(argv=None) -> int:
    from dif.atomic import check_output_file, write_text_atomic
    from dif.cli import Parser, int_in, setup_logging
    from dif.errors import DIFError
    from dif.lineage import decide, likeness_of, load_methods, model_statistics

    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("--json", type=Path, default=None, help="write every statistic and p-value here")
    p.add_argument("--figure", type=Path, default=None, help="write the p-value heatmaps here (PNG)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--images", type=int_in(1, 10**6), default=None, help="at most this many images per model")
    args = p.parse_args(argv)
    setup_logging()
    check_output_file(args.json, "--json")
    check_output_file(args.figure, "--figure")
    root = shared_data()
    if root is None:
        raise DIFError("../shared/data not found (set DIF_SHARED_DATA)")
    methods = load_methods(root / "dif_official" / "checks")
    folders = {g.name: g for g in sorted((root / "dif_official" / "samples").iterdir()) if (g / "1_fake").is_dir()}
    folders.update({g.name: g for g in sorted((root / "cnndetection").iterdir()) if (g / "1_fake").is_dir()})
    record: dict = {"fingerprints": list(methods), "models": list(folders), "alpha": args.alpha, "conditions": {}}
    for cond in ("clean", "jpeg90"):
        stats = model_statistics(methods, folders, images=args.images, perturbation=None if cond == "clean" else cond)
        rows = []
        for f, m in methods.items():
            for c in folders:
                others = [o for o in folders if o != c]
                d = decide(stats[f][c][0], [stats[f][o][0] for o in others], args.alpha, "t", others,
                           likeness_of(m, stats[f][c][0]), stats[f][c][1])
                rows.append({"fingerprint": f, "model": c, "statistic": d.statistic, "likeness": d.likeness,
                             "p_rank": d.p_rank, "p_t": d.p_t, "related": d.related, "images": d.images})
        record["conditions"][cond] = rows
        print(f"\n[{cond}] t-test p-value of each fingerprint (rows) on each model's images (columns), pool = the "
              f"other {len(folders) - 1} models; * = related at alpha {args.alpha}")
        print(" " * 11 + "".join(f"{c[:9]:>10}" for c in folders))
        for f in methods:
            cells = []
            for c in folders:
                r = next(r for r in rows if r["fingerprint"] == f and r["model"] == c)
                cells.append(f"{r['p_t']:9.3f}{'*' if r['related'] else ' '}")
            print(f"{f[:10]:<11}" + "".join(cells))
    if args.json:
        write_text_atomic(args.json, json.dumps(record, indent=1) + "\n")
    if args.figure:
        _figure(record, args.figure)
    return 0


def _figure(record: dict, path: Path) -> None:
    from dif.plots import _plt, _save

    plt = _plt()
    fps, models = record["fingerprints"], record["models"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
    for ax, (cond, rows) in zip(axes, record["conditions"].items()):
        m = np.zeros((len(fps), len(models)))
        for r in rows:
            m[fps.index(r["fingerprint"]), models.index(r["model"])] = -np.log10(max(r["p_t"], 1e-6))
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=4)
        for r in rows:
            if r["related"]:
                ax.text(models.index(r["model"]), fps.index(r["fingerprint"]), "*", ha="center", va="center", color="w")
        ax.set_xticks(range(len(models)), models, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(fps)), fps, fontsize=7)
        ax.set_xlabel("model's generated images")
        ax.set_ylabel("released fingerprint")
        ax.set_title(f"{cond}: -log10 p (t test, pool = other models); * p <= {record['alpha']}", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.7)
    fig.tight_layout()
    _save(fig, path)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dif.cli import run_main

    sys.exit(run_main(main))
