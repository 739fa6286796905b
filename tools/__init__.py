"""Command-line tools beyond train.py, test.py and predict.py (``python -m tools.NAME``): a set of detectors trained on
one protocol, Grad-CAM explanations, the image cache, throughput benchmarks."""
