"""The training half of the engine: the loop behind train.py (``trainer``), its data, optimisers and schedules, and
the run folder it writes (config, records, lock)."""
