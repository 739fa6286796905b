"""CAEL and the detector registry."""
from .cael import CAEL
from .convert_released import load_released
from .registry import build_model, list_models, model_defaults, register_model

__all__ = ["CAEL", "build_model", "list_models", "load_released", "model_defaults", "register_model"]
