"""Deep Image Fingerprint (DIF) and the harness around it: detecting images of generative
models and tracing model lineage.

Packages and modules: ``methods`` (the method interface, the registry, DIF), ``extractors``
(residual extractors behind a spec registry), ``evaluate`` (streamed evaluation pipelines,
folds), ``metrics``, ``data`` (images, crops, streaming loader), ``fingerprint`` (correlation,
loss, training), ``detect`` (DIF scoring), ``calibration``, ``checkpoint`` and ``safe_pickle``
(files), ``atomic`` (safe output), ``robustness`` (perturbations), ``lineage``, ``spectrum``,
``plots``, ``blank`` (gray image experiment).
"""
from .config import DIFConfig
from .errors import DIFError

__all__ = ["DIFConfig", "DIFError"]
__version__ = "0.2.0"
