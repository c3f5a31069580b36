"""Matplotlib figures, each written atomically as a PNG with a title and axis labels."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .atomic import write_atomic
from .spectrum import spectrum_image, to_hwc


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, dpi: int = 120) -> Path:
    plt = _plt()
    try:
        return write_atomic(path, lambda p: fig.savefig(p, dpi=dpi, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def fingerprint_rgb(fp) -> np.ndarray:
    """A fingerprint in [-1, 1] (tanh output) as a displayable H x W x 3 image, contrast-
    stretched per image (the raw values are small and near zero)."""
    a = to_hwc(fp)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    lo, hi = np.percentile(a, [0.5, 99.5])
    return np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1)


def save_image_png(img, path: str | Path, title: str, stretch: bool = True) -> Path:
    """An image (fingerprint or picture) with a title."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    a = fingerprint_rgb(img) if stretch else np.clip(to_hwc(img), 0, 1)
    ax.imshow(a if a.shape[2] == 3 else a[..., 0], cmap=None if a.shape[2] == 3 else "gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    return _save(fig, path)


def save_spectrum_png(img, path: str | Path, title: str) -> Path:
    """The centred log-magnitude FFT of an image."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    s = spectrum_image(img)
    h, w = s.shape
    ax.imshow(s, cmap="bone", extent=(-0.5, 0.5, 0.5, -0.5))
    ax.set_title(title)
    ax.set_xlabel("horizontal frequency (cycles/pixel)")
    ax.set_ylabel("vertical frequency (cycles/pixel)")
    return _save(fig, path)


def save_training_png(loss: Sequence[float], real: Sequence[float], fake: Sequence[float], path: str | Path,
                      mu_real: Optional[float] = None, mu_fake: Optional[float] = None) -> Path:
    """Loss and mean real / fake correlation per training step."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    steps = np.arange(1, len(loss) + 1)
    a1.plot(steps, loss, color="tab:green", lw=1)
    a1.set_ylabel("contrastive loss")
    a1.set_title("DIF training")
    a1.grid(True, alpha=0.3)
    a2.plot(np.arange(1, len(real) + 1), real, color="tab:blue", lw=1, label="real")
    a2.plot(np.arange(1, len(fake) + 1), fake, color="tab:red", lw=1, label="fake")
    for mu, c, name in ((mu_real, "tab:blue", "real centre"), (mu_fake, "tab:red", "fake centre")):
        if mu is not None:
            a2.axhline(mu, color=c, ls="--", lw=0.8, label=name)
    a2.set_xlabel("training step")
    a2.set_ylabel("mean correlation with fingerprint")
    a2.grid(True, alpha=0.3)
    a2.legend()
    return _save(fig, path)


def save_histogram_png(scores: np.ndarray, labels: np.ndarray, marks: dict[str, float], path: str | Path,
                       title: str = "Correlation with the fingerprint", xlabel: str = "Pearson correlation") -> Path:
    """Histogram of the scores per class, with vertical lines at ``marks`` (centres, threshold)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    scores, labels = np.asarray(scores), np.asarray(labels)
    bins = np.histogram_bin_edges(scores, bins=min(50, max(10, len(scores) // 2)))
    for lab, name, c in ((0, "real", "tab:blue"), (1, "fake", "tab:red")):
        sel = scores[labels == lab]
        if sel.size:
            ax.hist(sel, bins=bins, alpha=0.55, color=c, label=f"{name} (n={sel.size})")
    for name, v in marks.items():
        if v is None or not np.isfinite(v):
            continue
        colour, style = ("tab:blue", "--") if "real" in name else ("tab:red", "--") if "fake" in name else ("k", ":")
        ax.axvline(v, color=colour, ls=style, label=f"{name} {v:.4g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def save_roc_png(scores: np.ndarray, labels: np.ndarray, path: str | Path, title: str = "ROC") -> Path:
    """ROC curve of the fake-oriented correlation."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fpr, tpr, _ = roc_curve(labels, scores)
    auc = roc_auc_score(labels, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, color="tab:purple", label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], color="gray", ls=":")
    ax.set_xlabel("false positive rate (real called fake)")
    ax.set_ylabel("true positive rate (fake called fake)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _save(fig, path)


def save_gray_experiment_png(image, path: str | Path, title: str = "Gray image experiment") -> Path:
    """The U-Net's output for a flat gray target beside its spectrum."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 5))
    a = np.clip(to_hwc(image), 0, 1)
    a1.imshow(a, vmin=0, vmax=1)
    a1.set_title(f"output (mean {a.mean():.3f}, std {a.std():.4f})")
    a1.set_xlabel("x (pixels)")
    a1.set_ylabel("y (pixels)")
    a2.imshow(spectrum_image(image), cmap="bone", extent=(-0.5, 0.5, 0.5, -0.5))
    a2.set_title("log |FFT| of the output")
    a2.set_xlabel("horizontal frequency (cycles/pixel)")
    a2.set_ylabel("vertical frequency (cycles/pixel)")
    fig.suptitle(title)
    return _save(fig, path)


def save_fingerprint_panel_png(fps: dict, path: str | Path, title: str = "Fingerprints and spectra") -> Path:
    """Several fingerprints (name -> tensor) and their spectra, side by side."""
    plt = _plt()
    n = len(fps)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.6), squeeze=False)
    for i, (name, fp) in enumerate(fps.items()):
        axes[0, i].imshow(fingerprint_rgb(fp))
        axes[0, i].set_title(name, fontsize=9)
        axes[1, i].imshow(spectrum_image(fp), cmap="bone")
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("fingerprint")
    axes[1, 0].set_ylabel("log |FFT|")
    fig.suptitle(title)
    return _save(fig, path)


def save_heatmap_png(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], path: str | Path, title: str,
                     xlabel: str, ylabel: str, vmin: float = 0.0, vmax: float = 1.0, fmt: str = "{:.2f}",
                     cmap: str = "viridis") -> Path:
    """A labelled heatmap with the value written in each cell (NaN cells left blank)."""
    plt = _plt()
    m = np.asarray(matrix, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 2.5, 0.6 * len(rows) + 2))
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), labels=list(cols), rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                v = (m[i, j] - vmin) / max(vmax - vmin, 1e-12)
                ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=8,
                        color="black" if v > 0.6 else "white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path)


def save_robustness_png(names: Sequence[str], accuracy: Sequence[float], auc: Sequence[float], path: str | Path,
                        title: str = "Robustness") -> Path:
    """Accuracy and AUC per perturbation, as grouped bars with the chance level."""
    plt = _plt()
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names) + 2), 4.5))
    ax.bar(x - 0.2, np.asarray(accuracy, dtype=float), 0.4, label="accuracy", color="tab:blue")
    ax.bar(x + 0.2, np.asarray([np.nan if a is None else a for a in auc], dtype=float), 0.4, label="ROC AUC",
           color="tab:orange")
    ax.axhline(0.5, color="gray", ls=":", label="chance")
    ax.set_xticks(x, labels=list(names), rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("perturbation")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)
