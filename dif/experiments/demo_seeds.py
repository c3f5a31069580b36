"""How much one demo set decides (``benchmarks/demo_seeds.py``): the quick start's three commands,
run as a new user runs them (subprocesses from the repository root), over several seeds."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ..atomic import check_output_file, write_text_atomic
from ..errors import DIFError
from .common import REPO, parse_list


def run(cmd: list[str]) -> tuple[str, float]:
    """stdout of ``cmd`` (run from the repo root) and its wall time; a failure stops the benchmark
    with the command's own last line."""
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if p.returncode:
        last = (p.stderr.strip().splitlines() or ["no message"])[-1].removeprefix("error: ")
        raise DIFError(f"{shlex.join(cmd[1:3])} failed: {last}")
    return p.stdout, time.perf_counter() - t


def conditions(metrics: Path, perturbed: bool) -> dict:
    """{condition: {accuracy, auc}} as eval_dif.py wrote them: its --csv holds one row per condition
    with --perturb, its --json the clean metrics without."""
    import csv

    if not perturbed:
        m = json.loads(metrics.read_text())
        return {"clean": {"accuracy": m["accuracy"], "auc": m["auc"]}}
    with open(metrics, newline="") as f:
        return {r["perturbation"]: {"accuracy": float(r["accuracy"]), "auc": float(r["auc"])} for r in csv.DictReader(f)}


def one_seed(work: Path, seed: int, demo_args: list[str], train_args: list[str], perturb: str) -> dict:
    demo, check = work / f"s{seed}", work / f"s{seed}_check"
    py = sys.executable
    _, t_demo = run([py, "-m", "dif.demo", str(demo), "--seed", str(seed), "--overwrite", "--quiet", *demo_args])
    out, t_train = run([py, "train_dif.py", str(demo / "train"), str(check), "--overwrite", "--quiet", *train_args])
    metrics = work / f"s{seed}_metrics.{'csv' if perturb else 'json'}"
    ev = [py, "eval_dif.py", str(check), str(demo / "test"), "--quiet"]
    _, t_eval = run(ev + (["--csv", str(metrics), "--perturb", perturb] if perturb else ["--json", str(metrics)]))
    row = {"seed": seed, "time_s": {"demo": round(t_demo, 1), "train": round(t_train, 1), "eval": round(t_eval, 1)},
           "train_notes": [line for line in out.splitlines() if "auto" in line or "extractor" in line][:3]}
    row["conditions"] = conditions(metrics, bool(perturb))
    chosen = re.search(r"chose (\S+?)[ ,:(]", " ".join(row["train_notes"]))
    row["extractor"] = chosen.group(1) if chosen else None
    return row


def run_seeds(a) -> int:
    """Each seed of ``a.seeds`` not yet in ``a.out`` (same arguments), then the mean per condition."""
    seeds = parse_list(a.seeds, "--seeds")
    check_output_file(a.out, "--out")
    key = {"demo_args": a.demo_args, "train_args": a.train_args, "perturb": a.perturb,
           "threads": os.environ.get("OMP_NUM_THREADS", "all")}
    done = json.loads(a.out.read_text()) if a.out.exists() else {**key, "rows": []}
    if any(done.get(k) != v for k, v in key.items()):
        raise DIFError(f"--out: {a.out} holds a run with other arguments or threads; name another file")
    a.work.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        if any(r["seed"] == seed for r in done["rows"]):
            continue
        row = one_seed(a.work, seed, shlex.split(a.demo_args), shlex.split(a.train_args), a.perturb)
        done["rows"].append(row)
        write_text_atomic(a.out, json.dumps(done, indent=2) + "\n")
        conds = "  ".join(f"{c} {v['accuracy']:.3f}/{v['auc']:.3f}" for c, v in row["conditions"].items())
        print(f"seed {seed}: {row['extractor']}  {conds}  ({row['time_s']})", flush=True)
    rows = [r for r in done["rows"] if r["seed"] in seeds]
    for cond in rows[0]["conditions"] if rows else []:
        acc = [r["conditions"][cond]["accuracy"] for r in rows]
        print(f"{cond}: mean accuracy {sum(acc) / len(acc):.3f} over {len(acc)} seeds, "
              f"{sum(x >= 0.9 for x in acc)} of {len(acc)} >= 0.90")
    return 0

