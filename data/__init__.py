"""Everything from videos to training batches: the split-CSV schema and its validation, face extraction (``faces/``),
dataset builders (``builders/``), protocols, datasets, loaders and augmentations, and the demo data."""
