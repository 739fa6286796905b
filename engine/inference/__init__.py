"""Inference: a detector's forward pass over batches (shared by validation, test.py and predict.py), and predict.py's
path from new images and videos to face crops, per-input results and the files it writes."""
