"""Bit strings, bit accuracy and the attribution test: pure functions.

Attribution follows the paper: the decoded string is compared with each user's; the number of
matching bits of the best user is tested one-sided against chance (Binomial(n, 1/2)), and the
p-value is Bonferroni-corrected for the number of users. Tails are exact: integer sums of binomial
coefficients over 2**n, so p-values far below 1e-300 keep their -log10.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

from ..errors import DIFError

DEFAULT_ALPHA = 1e-6  # overall significance: a clean image is wrongly attributed with probability <= this


def random_bits(count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` x ``length`` random 0/1 floats (fresh strings, as in their training)."""
    return torch.randint(0, 2, (count, length), generator=generator).float()


def bits_to_str(bits: torch.Tensor | np.ndarray | Sequence[int]) -> str:
    return "".join("1" if float(b) > 0.5 else "0" for b in bits)


def alpha_arg(text: str) -> float:
    """argparse type of ``--alpha``: a significance level in (0, 1)."""
    import argparse
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not (math.isfinite(v) and 0 < v < 1):
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return v


def parse_bits(text: str, length: int | None = None, where: str = "") -> np.ndarray:
    """A '0110...' string as a uint8 array; DIFError for other characters or another length."""
    text = text.strip()
    if not text:
        raise DIFError(f"{where}expected a string of 0 and 1, got nothing")
    bad = next((i for i, c in enumerate(text) if c not in "01"), None)
    if bad is not None:  # quote the offending character itself, with a little context
        lo = max(0, bad - 10)
        raise DIFError(f"{where}expected a string of 0 and 1: character {bad + 1} is {text[bad]!r} "
                       f"(...{text[lo:bad + 10]!r}...)")
    if length is not None and len(text) != length:
        raise DIFError(f"{where}fingerprint of {len(text)} bits, the model's are {length} bits")
    return np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")


def decode_bits(logits: torch.Tensor) -> torch.Tensor:
    """A bit is 1 where its logit is positive (their rule)."""
    return (logits > 0).float()


def bit_accuracy(true: torch.Tensor | np.ndarray, decoded: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per string: 1 - mean |w - w_hat| (the share of matching bits)."""
    t, d = np.asarray(true, dtype=np.float64), np.asarray(decoded, dtype=np.float64)
    return 1.0 - np.abs(t - d).mean(axis=-1)


def binomial_tail(k: int, n: int) -> Fraction:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly."""
    if not 0 <= n:
        raise ValueError("n must be >= 0")
    k = max(k, 0)
    if k > n:
        return Fraction(0)
    return Fraction(sum(math.comb(n, j) for j in range(k, n + 1)), 2 ** n)


def neg_log10(p: Fraction) -> float:
    """-log10 of an exact probability (integers, so 2**-1000 is 301.03, not inf)."""
    if p <= 0:
        return math.inf
    return (math.log10(p.denominator) - math.log10(p.numerator)) if p < 1 else 0.0


@dataclass(frozen=True)
class Attribution:
    user: str             # the best-matching user
    matching_bits: int
    n_bits: int
    p_value: float        # one-sided binomial p-value of the best user's matches (uncorrected)
    neg_log10_p: float    # -log10 of the Bonferroni-corrected p-value (the score: larger = more evidence)
    attributed: bool      # corrected p-value <= alpha


def attribute(decoded: np.ndarray, users: Sequence[str], database: np.ndarray,
              alpha: float = DEFAULT_ALPHA) -> list[Attribution]:
    """Best user for each decoded string (rows of ``decoded``), and whether the match is significant
    at ``alpha`` overall: Bonferroni over the len(users) comparisons made for every image."""
    decoded = np.asarray(decoded, dtype=np.uint8)
    database = np.asarray(database, dtype=np.uint8)
    if database.ndim != 2 or decoded.ndim != 2 or database.shape[1] != decoded.shape[1]:
        raise DIFError(f"the database holds {database.shape[-1]}-bit fingerprints, the decoder gives "
                       f"{decoded.shape[-1]} bits")
    n, m = decoded.shape[1], len(users)
    matches = decoded.astype(np.int32) @ database.T.astype(np.int32) + \
        (1 - decoded.astype(np.int32)) @ (1 - database.T.astype(np.int32))
    tails = {}
    out = []
    for row in matches:
        j = int(row.argmax())
        k = int(row[j])
        if k not in tails:
            tails[k] = binomial_tail(k, n)
        p = tails[k]
        corrected = min(Fraction(1), p * m)
        out.append(Attribution(users[j], k, n, float(p), neg_log10(corrected), corrected <= Fraction(alpha)))
    return out


def threshold_score(alpha: float = DEFAULT_ALPHA) -> float:
    """The -log10(corrected p) above which an image is attributed."""
    return -math.log10(alpha)
