"""The machinery behind train.py, test.py and predict.py: ``training/``, ``evaluation/`` and ``inference/``, over the
runtime they share (config, device, distributed, logs, figures)."""
