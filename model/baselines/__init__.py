"""Baseline detectors of the comparison tables, one file each, registered by name like ``cael``."""

from . import (  # noqa: F401  (importing a module registers its detector)
    clip_ln,
    clip_lora,
    cnndet,
    cross_efficient_vit,
    dinov2_ln,
    efficientnet_b4,
    efficientnet_sobel,
    effort,
    univfd,
    xception,
)
