"""Baseline detectors of the comparison tables, one file each, registered by name like ``cael``."""

# Importing a module registers its detector.
from . import cnndet, cross_efficient_vit, efficientnet_b4, efficientnet_sobel, univfd, xception  # noqa: F401
