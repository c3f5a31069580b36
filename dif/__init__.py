"""Deep Image Fingerprint (DIF): detecting images of CNN generators and tracing model lineage.

Modules: ``unet`` (fingerprint generator), ``denoiser`` (residual extractors), ``data``
(images, crops, residual cache), ``fingerprint`` (correlation, loss, training), ``detect``
(scoring, metrics), ``checkpoint`` (files), ``spectrum`` (FFT), ``plots`` (figures),
``blank`` (gray image experiment).
"""
from .config import DIFConfig
from .errors import DIFError

__all__ = ["DIFConfig", "DIFError"]
__version__ = "0.1.0"
