"""Row keys (videos, frames, identities) as integer codes into a table of names: sorting and grouping a million
rows then costs integer work, not a million Python string comparisons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Keys:
    """``names[codes[i]]`` is row i's key; ``names`` is sorted and unique, so codes order rows as names do."""

    codes: np.ndarray
    names: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    def name(self, code: int) -> str:
        return str(self.names[code])

    def subset(self, rows: np.ndarray) -> Keys:
        """The keys of ``rows`` (codes keep pointing into the same names; unused names are harmless)."""
        return Keys(self.codes[rows], self.names)

    @classmethod
    def of(cls, values: Keys | Sequence | np.ndarray) -> Keys:
        """Keys of a sequence of strings (or numbers), or ``values`` itself when it already is one."""
        if isinstance(values, Keys):
            return values
        array = np.asarray(values)
        if array.dtype.kind not in "iub":
            array = array.astype(str)
        names, codes = np.unique(array, return_inverse=True)
        return cls(codes.reshape(-1).astype(np.int64, copy=False), names)
