"""Baseline detectors of the comparison tables, one file each, registered by name like ``cael``."""

from . import (  # noqa: F401  (importing a module registers its detector)
    cnndet,
    cross_efficient_vit,
    efficientnet_b4,
    efficientnet_sobel,
    univfd,
    xception,
)
