"""Lineage measured (``benchmarks/lineage.py``): the sweep over replicates of generators trained
here, the lineage decision on the authors' released fingerprints, and those fingerprints'
detection on their own sample images per residual extractor.

The sweep (``run_sweep``). Lineage over many seeds: the lineage decision's true- and false-positive rates, measured.

Each replicate r (one seed) trains, on random crops of ../shared/data (``dif.generators``, seeded):
  P   dcgan  (ConvTranspose up-sampling) on A = train400[:300] (grey photos)   a parent
  U   upconv (nearest up-sampling + 3x3)  on A                                   a parent
  Q   dcgan  on D = the CNNDetection real photos (colour)                       a stranger of other data
  V   upconv on D                                                                a stranger of other data
  P>k, U>k: each parent fine-tuned on B = bsd68 + live1 (new content, colour; --child-data bsd68: the
            grey BSD68 alone) for k steps, for each k of --finetune (one chain: each depth continues
            from the previous)
Each parent gets a DIF fingerprint (train_dif.py: real crops of train400[300:], which no generator
saw, against the parent's samples). Every fingerprint then scores new samples of every model of
every replicate, and new real crops.

The decision (``dif.lineage.decide``, fixed before this sweep ran: statistic = mean oriented score of
the candidate's images, rank test, alpha 0.05) is made for every (parent, candidate) pair with a
pool of models from *other* replicates only: for a candidate of replicate s, the pool is every
model of the replicates other than r and s (for a candidate of r's own replicate, other than r
and r + 1), so the pool never holds the candidate, its relatives, or the parent's family, and every
pair has a pool of the same size. Related pairs: a parent and its own children. Unrelated pairs,
by kind: the sibling (same architecture and data, other seed), the sibling's children, the other
architecture on the same data (and its children), the same or the other architecture on other data.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..atomic import RunFolder, check_output_file, write_text_atomic
from ..checkpoint import load_fingerprint_dir
from ..cli import resolve_device
from ..config import DIFConfig
from ..data import compute_residuals, find_labelled, list_images, load_image
from ..detect import Detector
from ..errors import DIFError
from ..evaluate import score_images
from ..extractors import build_extractor
from ..generators import GeneratorConfig, random_crops, train_generator
from ..lineage import decide, likeness_of, load_methods, model_statistics
from ..metrics import binary_metrics, wilson_interval
from ..plots import _plt, _save
from ..robustness import get_perturbation
from .common import need_shared_data, parse_list, train_dif_folder

KINDS = ("self", "child", "sibling", "sibling's child", "other architecture", "other architecture's child",
         "other data, same architecture", "other data, other architecture")


def save_images(folder: Path, imgs) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(imgs):
        Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / f"{i:05d}.png")
    return folder


def relation(parent: tuple[int, str], model: tuple[int, str, int]) -> str:
    """The candidate's relation to the parent: ``parent`` = (replicate, arch P/U), ``model`` =
    (replicate, base P/U/Q/V, fine-tuning steps)."""
    r, a = parent
    s, b, k = model
    if b == a and s == r:
        return "child" if k else "self"
    if b == a:
        return "sibling's child" if k else "sibling"
    if b in ("P", "U"):
        return "other architecture's child" if k else "other architecture"
    same_arch = {"P": "Q", "U": "V"}[a] == b
    return "other data, same architecture" if same_arch else "other data, other architecture"


def pool_replicates(r: int, s: int, seeds: list[int]) -> list[int]:
    """The replicates a pair's pool is drawn from: neither the parent's nor the candidate's."""
    other = s if s != r else seeds[(seeds.index(r) + 1) % len(seeds)]
    return [q for q in seeds if q not in (r, other)]


def evaluate_pairs(stats: dict, models: list[tuple[int, str, int]], parents: list[tuple[int, str]], seeds: list[int],
                   alpha: float) -> list[dict]:
    """One row per (parent, candidate): statistic, p-values, decision. ``stats[parent][model]``."""
    rows = []
    for par in parents:
        for mod in models:
            rel = relation(par, mod)  # "self": the parent's own new images, the decision's positive control
            reps = pool_replicates(par[0], mod[0], seeds)
            pool = [m for m in models if m[0] in reps]
            vals = [stats[par][m] for m in pool]
            if len(vals) < 2:
                continue
            d = decide(stats[par][mod], vals, alpha, "rank")
            rows.append({"parent": f"r{par[0]}{par[1]}", "candidate": f"r{mod[0]}{mod[1]}" + (f">{mod[2]}" if mod[2] else ""),
                         "relation": rel, "steps": mod[2], "statistic": d.statistic, "pool": len(vals),
                         "p_rank": d.p_rank, "p_t": d.p_t, "related_rank": d.p_rank <= alpha, "related_t": d.p_t <= alpha})
    return rows


def summarise(rows: list[dict], alpha: float) -> list[dict]:
    """Rate of "related" per relation and fine-tuning depth (rank and t tests), Wilson intervals."""
    out = []
    keys = sorted({(r["relation"], r["steps"]) for r in rows}, key=lambda t: (KINDS.index(t[0]) if t[0] in KINDS else 99,
                                                                              t[1]))
    for rel, k in keys:
        sel = [r for r in rows if r["relation"] == rel and r["steps"] == k]
        d = {"relation": rel, "steps": k, "pairs": len(sel)}
        for test in ("rank", "t"):
            hits = sum(r[f"related_{test}"] for r in sel)
            lo, hi = wilson_interval(hits, len(sel))
            d[f"related_{test}"] = hits / len(sel)
            d[f"ci_{test}"] = [round(lo, 3), round(hi, 3)]
        out.append(d)
    return out


def auc_table(aucs: dict, models, parents) -> list[dict]:
    """Mean AUC (candidate's images vs real test images) of a parent's fingerprint per relation and
    depth, with a 95% interval over pairs (t over pairs: a spread, not a test)."""
    groups: dict = {}
    for par in parents:
        for mod in models:
            rel = relation(par, mod)
            groups.setdefault((rel, mod[2]), []).append(aucs[par][mod])
    out = []
    for (rel, k), v in sorted(groups.items(), key=lambda t: (t[0][0] != "self", t[0][0], t[0][1])):
        v = np.array(v)
        half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
        out.append({"relation": rel, "steps": k, "pairs": len(v), "auc_mean": float(v.mean()),
                    "auc_ci": [float(v.mean() - half), float(v.mean() + half)]})
    return out


def shared_recipe(rows: list[dict], finetune: list[int]) -> list[dict]:
    """Lineage against a shared recipe: for each parent, how often its own child (at each depth)
    has a higher statistic than a sibling (same architecture, data and loss, another seed)."""
    out = []
    for k in finetune:
        wins = total = 0
        for par in sorted({r["parent"] for r in rows}):
            kids = [r["statistic"] for r in rows if r["parent"] == par and r["relation"] == "child" and r["steps"] == k]
            sibs = [r["statistic"] for r in rows if r["parent"] == par and r["relation"] == "sibling"]
            for c in kids:
                for s in sibs:
                    wins += (c > s) + 0.5 * (c == s)
                    total += 1
        if total:
            out.append({"steps": k, "auc": wins / total, "pairs": total})
    return out


def _figure(record: dict, path: Path) -> None:
    plt = _plt()
    conds = record["conditions"]
    fig, axes = plt.subplots(2, len(conds), figsize=(5 * len(conds), 6.4), squeeze=False)
    steps = [0] + record["finetune"]
    x0 = float(f"{record['finetune'][0] / 3:.2g}")
    x = {k: (k if k else x0) for k in steps}
    lines = [("child", "self", "the parent's own children", "C0"), ("sibling's child", "sibling", "sibling (same recipe)", "C1"),
             ("other architecture's child", "other architecture", "other architecture, same data", "C2")]
    for j, cond in enumerate(conds):
        res = record["results"][cond]
        ax = axes[0, j]
        for kid, base, label, col in lines:
            pts = [(x[d["steps"]], d["auc_mean"], d["auc_ci"]) for d in res["auc"]
                   if d["relation"] in (kid, base) and (d["relation"] == kid or d["steps"] == 0)]
            pts.sort()
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                            yerr=[[p[1] - p[2][0] for p in pts], [p[2][1] - p[1] for p in pts]], fmt="o-", color=col,
                            label=label, capsize=3)
        for d in res["auc"]:
            if d["relation"].startswith("other data"):
                ax.errorbar([x[0]], [d["auc_mean"]], yerr=[[d["auc_mean"] - d["auc_ci"][0]], [d["auc_ci"][1] - d["auc_mean"]]],
                            fmt="s", color="C3" if "same" in d["relation"] else "C4", label=d["relation"], capsize=3)
        ax.axhline(0.5, color="grey", lw=0.6)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(f"fine-tuning steps on new data (0 plotted at {x0:g})")
        ax.set_ylabel("AUC of the parent's fingerprint")
        ax.set_title(f"{cond}: parent's AUC on each relation", fontsize=9)
        ax.legend(fontsize=6)
        ax = axes[1, j]
        for kid, base, label, col in lines:
            pts = sorted((x[d["steps"]], d["related_rank"], d["ci_rank"]) for d in res["rates"]
                         if d["relation"] in (kid, base) and (d["relation"] == kid or d["steps"] == 0))
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                            yerr=[[p[1] - p[2][0] for p in pts], [p[2][1] - p[1] for p in pts]], fmt="o-", color=col,
                            label=label, capsize=3)
        ax.axhline(record["alpha"], color="grey", ls="--", lw=0.8, label=f"alpha {record['alpha']}")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"fine-tuning steps on new data (0 plotted at {x0:g})")
        ax.set_ylabel("rate decided 'related' (rank test)")
        ax.set_title(f"{cond}: lineage decision", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    _save(fig, path)



def run_sweep(args) -> int:
    """Train every replicate's models and fingerprints, score every model with every fingerprint,
    decide every (parent, candidate) pair; results.json, pairs and a figure in ``args.out``."""
    seeds = parse_list(args.seeds, "--seeds", low=0)
    finetune = sorted(set(parse_list(args.finetune, "--finetune", low=1)))
    if len(set(seeds)) != len(seeds):
        raise DIFError("--seeds needs distinct seeds >= 0")
    if len(seeds) < 3:
        print(f"note: {len(seeds)} replicate(s): no pair has a pool of other replicates, so only the AUC table is "
              "made (the lineage decision needs at least 3 seeds)")
    if not 0 < args.alpha < 1:
        raise DIFError(f"--alpha must be in (0, 1), got {args.alpha}")
    conditions = ["clean"] + [c.strip() for c in args.perturb.split(",") if c.strip()]
    for c in conditions[1:]:
        get_perturbation(c)
    device = resolve_device(args.device)
    data = need_shared_data()
    t_all = time.perf_counter()
    nat, cnn = data / "natural", data / "cnndetection"
    train400 = list_images(nat / "train400")
    S, n = args.size, args.images
    photos_a = [load_image(q) for q in train400[:300]]
    photos_b = [load_image(q) for q in list_images(nat / "bsd68") + (list_images(nat / "live1")
                                                                    if args.child_data == "bsd68+live1" else [])]
    photos_d = [load_image(q) for g in sorted(cnn.iterdir()) if (g / "0_real").is_dir() for q in list_images(g / "0_real")]
    A = random_crops(photos_a, S, args.crops, 1)    # the same crops for every replicate: a sibling shares the data
    B = random_crops(photos_b, S, args.crops, 2)
    D = random_crops(photos_d, S, args.crops, 3)
    R = random_crops([load_image(q) for q in train400[300:]], S, 2 * n, 4)
    real_train, real_test = R[:n], R[n:]
    progress = not args.quiet and sys.stderr.isatty()
    record: dict = {"seeds": seeds, "size": S, "steps": args.steps, "finetune": finetune, "crops": args.crops, "images": n,
                    "epochs": args.epochs, "extractor": args.extractor, "alpha": args.alpha, "conditions": conditions,
                    "child_data": args.child_data,
                    "device": str(device), "decision": "mean oriented score, rank test, pool = other replicates",
                    "models": {}}
    arch = {"P": "dcgan", "U": "upconv", "Q": "dcgan", "V": "upconv"}
    data_of = {"P": A, "U": A, "Q": D, "V": D}

    def tag(m: tuple[int, str, int]) -> str:
        return f"r{m[0]}{m[1]}" + (f">{m[2]}" if m[2] else "")

    with RunFolder(args.out, args.overwrite, lambda name: name in ("results.json", "figures", "data", "fingerprints",
                                                                   "pairs.csv"), what="--out") as run:
        out = run.tmp
        models: list[tuple[int, str, int]] = []
        parents: list[tuple[int, str]] = []
        for r in seeds:
            for b in ("P", "U", "Q", "V"):
                cfg = GeneratorConfig(arch=arch[b], size=S, steps=args.steps, seed=1000 * r + ord(b))
                gen = train_generator(data_of[b], cfg, device, progress=progress, desc=f"r{r}{b}")
                chain = [(0, gen)]
                if b in ("P", "U"):
                    prev, done = gen, 0
                    for k in finetune:
                        prev = train_generator(B, GeneratorConfig(arch=arch[b], size=S, steps=k - done,
                                                                  seed=1000 * r + 500 + ord(b)), device, init=prev)
                        done = k
                        chain.append((k, prev))
                for k, g in chain:
                    m = (r, b, k)
                    models.append(m)
                    fake = g.sample(2 * n if (k == 0 and b in ("P", "U")) else n, seed=10_000 * r + 7 * ord(b) + k)
                    save_images(out / "data" / "models" / tag(m), fake[-n:])   # new samples: the test images
                    if k == 0 and b in ("P", "U"):
                        save_images(out / "data" / "train" / tag(m) / "0_real", real_train)
                        save_images(out / "data" / "train" / tag(m) / "1_fake", fake[:n])
                        parents.append((r, b))
                    record["models"][tag(m)] = {"arch": arch[b], "finetune_steps": k, "seconds": round(g.seconds, 1)}
                print(f"replicate {r}, {b} ({arch[b]}): trained, {len(chain)} model(s), "
                      f"{time.perf_counter() - t_all:.0f} s so far", flush=True)
        save_images(out / "data" / "real_test", real_test)

        for i, par in enumerate(parents):  # distinct DIF seeds: shared initial weights would look like lineage
            name = f"r{par[0]}{par[1]}"
            cfg = DIFConfig(crop=S, epochs=args.epochs, batch_size=min(64, n), extractor=args.extractor, augment=0,
                            seed=100 + i, checkpoint_every=args.epochs)
            secs = train_dif_folder(out / "data" / "train" / name, out / "fingerprints" / name, cfg, device.type)
            record["models"][name]["dif_seconds"] = round(secs, 1)
        print(f"{len(parents)} fingerprints trained, {time.perf_counter() - t_all:.0f} s so far", flush=True)

        methods = load_methods(out / "fingerprints", device=device)
        pname = {par: f"r{par[0]}{par[1]}" for par in parents}
        record["results"] = {}
        for cond in conditions:
            pert = None if cond == "clean" else get_perturbation(cond)

            def scores_of(folder: Path) -> dict[str, np.ndarray]:
                paths = list_images(folder)
                s = score_images(methods, paths, [1] * len(paths), pert, allow_smaller=pert is not None, batch_size=64,
                                 workers=0)
                return {k: np.asarray(v) for k, v in s.scores.items()}

            real = scores_of(out / "data" / "real_test")
            stats, aucs = {par: {} for par in parents}, {par: {} for par in parents}
            for m in models:
                sc = scores_of(out / "data" / "models" / tag(m))
                for par in parents:
                    v = sc[pname[par]]
                    stats[par][m] = float(v.mean())
                    lab = np.r_[np.zeros(len(real[pname[par]])), np.ones(len(v))]
                    aucs[par][m] = binary_metrics(np.r_[real[pname[par]], v], lab, 0.0)["auc"]
            rows = evaluate_pairs(stats, models, parents, seeds, args.alpha)
            record["results"][cond] = {"rates": summarise(rows, args.alpha), "auc": auc_table(aucs, models, parents),
                                       "pairs": rows, "shared_recipe": shared_recipe(rows, finetune),
                                       "statistics": {pname[par]: {tag(m): stats[par][m] for m in models} for par in parents}}
            print(f"[{cond}] scored, {time.perf_counter() - t_all:.0f} s so far", flush=True)
        figs = out / "figures"
        figs.mkdir(parents=True, exist_ok=True)
        _figure(record, figs / "lineage_sweep.png")
        record["seconds"] = round(time.perf_counter() - t_all, 1)
        write_text_atomic(out / "results.json", json.dumps(record, indent=1) + "\n")
        run.commit()

    for cond in conditions:
        res = record["results"][cond]
        print(f"\n[{cond}] rate of 'related' at alpha {args.alpha} (rank test | t test), 95% Wilson interval:")
        for d in res["rates"]:
            print(f"  {d['relation']:<32} {d['steps']:>5} steps  {d['pairs']:>3} pairs  rank {d['related_rank']:.2f} "
                  f"{d['ci_rank']}  t {d['related_t']:.2f} {d['ci_t']}")
        print(f"[{cond}] AUC of the parent's fingerprint (model's images vs real), mean [95% interval]:")
        for d in res["auc"]:
            print(f"  {d['relation']:<32} {d['steps']:>5} steps  {d['pairs']:>3} pairs  {d['auc_mean']:.3f} "
                  f"[{d['auc_ci'][0]:.3f}, {d['auc_ci'][1]:.3f}]")
        for d in res["shared_recipe"]:
            print(f"[{cond}] child at {d['steps']} steps vs sibling: the statistic ranks the child higher in "
                  f"{d['auc']:.2f} of (child, sibling) pairs of the same parent")
    if args.figures:
        import shutil

        args.figures.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.out / "figures" / "lineage_sweep.png", args.figures / "lineage_sweep.png")
    print(f"{record['seconds']:.0f} s; wrote {args.out}")
    return 0



def run_official(args) -> int:
    """The lineage decision of every released fingerprint on every model's images of the shared
    data (pool: the other models; t test), as shipped and re-saved as JPEG 90."""
    check_output_file(args.json, "--json")
    check_output_file(args.figure, "--figure")
    root = need_shared_data()
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
        _official_figure(record, args.figure)
    return 0



def _official_figure(record: dict, path: Path) -> None:
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



def run_released_detection(args) -> int:
    """Each released fingerprint on its own generator's samples, per extractor: AUC and
    leave-one-out accuracy, bootstrap intervals."""
    root = need_shared_data()
    check_output_file(args.json, "--json")
    check_output_file(args.card, "--card")
    samples = root / "dif_official" / "samples"
    gens = sorted(d.name for d in samples.iterdir() if d.is_dir())
    extractors = [build_extractor(spec) for spec in args.extractors.split(",")]
    detectors = {g: Detector.from_state(load_fingerprint_dir(root / "dif_official" / "checks" / g).state) for g in gens}
    datasets = {g: find_labelled(samples / g) for g in gens}
    table: dict = {}
    oriented: dict = {}
    labels: dict = {}
    for ext in extractors:
        table[ext.spec] = {}
        oriented[ext.spec] = {}
        for g in gens:
            det, ds = detectors[g], datasets[g]
            cache = compute_residuals(ds.paths, ds.labels, ext, det.crop)
            s = det.correlate(cache.residuals)
            y = cache.labels.numpy()
            labels[g] = y
            oriented[ext.spec][g] = det.oriented(s)
            table[ext.spec][g] = {"auc": pair_auc(oriented[ext.spec][g], y), "loo_accuracy": loo_accuracy(s, y)}
    md = markdown_table(table, gens)
    print(md)
    if args.bootstrap:
        intervals = bootstrap_mean_auc(oriented, labels, args.bootstrap)
        print()
        print(intervals_text(intervals))
        for spec, iv in intervals.items():
            table[spec]["mean_auc_interval"] = iv["interval"]
            table[spec]["paired_difference_vs_first"] = iv.get("difference")
    if args.json:
        write_text_atomic(args.json, json.dumps(table, indent=1) + "\n")
    if args.card:
        update_card(args.card, md + ("\n\n" + intervals_text(intervals) if args.bootstrap else ""))
    return 0



def loo_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Balanced accuracy when each image is classified by the centres of all the others."""
    pred = np.empty_like(labels)
    for i in range(len(scores)):
        keep = np.arange(len(scores)) != i
        mu_r = scores[keep & (labels == 0)].mean()
        mu_f = scores[keep & (labels == 1)].mean()
        pred[i] = int(abs(scores[i] - mu_f) < abs(scores[i] - mu_r))
    return float(np.mean([(pred[labels == c] == c).mean() for c in (0, 1)]))


def pair_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC as the share of (fake, real) pairs ordered right (ties count half); cheap enough
    for thousands of bootstrap resamples."""
    f, r = scores[y == 1][:, None], scores[y == 0][None, :]
    return float(np.mean((f > r) + 0.5 * (f == r)))


def bootstrap_mean_auc(oriented: dict, labels: dict, n: int, seed: int = 0) -> dict:
    """95% intervals of each extractor's mean AUC over the generators, and of its difference
    to the first extractor, by resampling the real and the fake images of every generator
    (the same resample for every extractor: a paired comparison)."""
    rng = np.random.default_rng(seed)
    specs = list(oriented)
    draws = {s: [] for s in specs}
    for _ in range(n):
        aucs = {s: [] for s in specs}
        for g, y in labels.items():
            idx = np.concatenate([rng.choice(np.flatnonzero(y == c), size=int((y == c).sum())) for c in (0, 1)])
            for s in specs:
                aucs[s].append(pair_auc(oriented[s][g][idx], y[idx]))
        for s in specs:
            draws[s].append(np.mean(aucs[s]))
    out = {}
    first = np.array(draws[specs[0]])
    for s in specs:
        d = np.array(draws[s])
        out[s] = {"interval": [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))]}
        if s != specs[0]:
            diff = first - d
            out[s]["difference"] = {"vs": specs[0], "interval": [float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))],
                                    "share_first_better": float(np.mean(diff > 0))}
    return out


def intervals_text(intervals: dict) -> str:
    specs = list(intervals)
    lines = [f"Bootstrap 95% intervals (images resampled within each generator): mean AUC, and `{specs[0]}` minus each other extractor"]
    for s, iv in intervals.items():
        lo, hi = iv["interval"]
        line = f"- `{s}`: mean AUC [{lo:.3f}, {hi:.3f}]"
        if "difference" in iv:
            dlo, dhi = iv["difference"]["interval"]
            line += f"; `{specs[0]}` - `{s}`: [{dlo:+.3f}, {dhi:+.3f}] ({100 * iv['difference']['share_first_better']:.0f}% of resamples favour `{specs[0]}`)"
        lines.append(line)
    return "\n".join(lines)


CARD_HEADING = "## Detection with the authors' released fingerprints"


def markdown_table(table: dict, gens: list[str]) -> str:
    head = "| extractor | " + " | ".join(f"{g} AUC / acc" for g in gens) + " | mean AUC | mean acc |"
    rows = [head, "|" + "---|" * (len(gens) + 3)]
    for spec, row in table.items():
        cells = " | ".join(f"{row[g]['auc']:.2f} / {row[g]['loo_accuracy']:.2f}" for g in gens)
        rows.append(f"| `{spec}` | {cells} | {np.mean([r['auc'] for r in row.values()]):.3f} | "
                    f"{np.mean([r['loo_accuracy'] for r in row.values()]):.3f} |")
    return "\n".join(rows)


def update_card(card: Path, md: str) -> None:
    """Replace (or append) the detection section of a model card with ``md``."""
    text = card.read_text() if card.is_file() else ""
    section = (f"{CARD_HEADING}\n\n`python benchmarks/lineage.py released`: each generator's released fingerprint "
               f"on the official samples (10 real + 10 fake); AUC oriented by the fingerprint's own centres, accuracy "
               f"with leave-one-out centres.\n\n{md}\n")
    if CARD_HEADING in text:
        head, _, rest = text.partition(CARD_HEADING)
        nxt = rest.find("\n## ")
        text = head + section + (rest[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_text_atomic(card, text)

