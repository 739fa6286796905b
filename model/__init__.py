"""CAEL, the baseline detectors and the detector registry."""

from . import baselines  # noqa: F401 (registers the baseline detectors)
from .cael import CAEL
from .convert_released import load_released
from .hub import load_detector
from .registry import build_model, list_models, model_defaults, register_model, without_downloads

__all__ = [
    "CAEL",
    "build_model",
    "list_models",
    "load_detector",
    "load_released",
    "model_defaults",
    "register_model",
    "without_downloads",
]
