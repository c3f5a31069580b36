"""Residual extractors: turn images (N x 3 x H x W in [0, 1]) into noise residuals.

Every extractor is a frozen ``nn.Module`` named by a spec string, built by ``build_extractor``:

- ``dncnn``: the project's own DnCNN (the authors' layout), trained by ``python -m dif.dncnn_train``
  and shipped in ``dif/weights/dncnn17.pt`` with its mean residual and model card;
  ``dncnn:PATH``: a DnCNN with weights from PATH (see ``save_dncnn``).
- ``wavelet`` or ``wavelet:SIGMA``: image minus its wavelet-denoised version (db8, 4 levels,
  BayesShrink soft thresholds for a noise level of SIGMA/255, default 5), the classical PRNU
  residual, in the shift-invariant (stationary) transform; ``wavelet-dwt``: the decimated transform.
- ``highpass`` or ``highpass:SIGMA``: image minus its Gaussian blur (sigma in pixels, default 1).
- ``authors:CHK[:MEAN.npy]``: the authors' own ``dncnn/chk_2000.pt`` (read without running its
  pickled code) and optionally their ``clean_real.npy`` mean residual.

A new kind is one module that calls ``register_kind`` and one import line below.
"""
from .base import (DEFAULT_EXTRACTOR, ExtractorKind, ResidualExtractor, build_extractor, extractor_identity, kinds,
                   parse_spec, register_kind, same_extractor)
from .dncnn import DNCNN_PAD, SHIPPED_DNCNN, DnCNN, DnCNNExtractor, load_dncnn, save_dncnn
from .filters import HighPassExtractor, WaveletExtractor, gaussian_blur, gaussian_kernel1d, swt_denoise, wavelet_denoise
from .authors import load_authors_dncnn

__all__ = ["DEFAULT_EXTRACTOR", "DNCNN_PAD", "SHIPPED_DNCNN", "DnCNN", "DnCNNExtractor", "ExtractorKind",
           "HighPassExtractor", "ResidualExtractor", "WaveletExtractor", "build_extractor", "extractor_identity",
           "gaussian_blur", "gaussian_kernel1d", "kinds", "load_authors_dncnn", "load_dncnn", "parse_spec",
           "register_kind", "same_extractor", "save_dncnn", "swt_denoise", "wavelet_denoise"]
