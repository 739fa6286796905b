"""The dataset builders of ``python -m data.datasets NAME``: one module per dataset, each registering its builder.

A new dataset is one module here with one function under ``@register_builder("name")`` (see ``base.py``), and one
import line below so that it registers.
"""

from . import (  # noqa: F401  (importing registers the builders)
    celebdf,
    celebdfpp,
    deeperforensics,
    deepfakebench,
    df40,
    dfdc,
    ffpp,
    wilddeepfake,
)
from .base import BUILDERS, BuildOptions, DatasetError, Video, build, register_builder, rows_of_videos

__all__ = ["BUILDERS", "BuildOptions", "DatasetError", "Video", "build", "register_builder", "rows_of_videos"]
