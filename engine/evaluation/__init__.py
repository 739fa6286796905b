"""The evaluation half of the engine: metrics and intervals, scoring a checkpoint on a protocol's test rows, and the
tables, cards, figures and predictions.csv that test.py writes."""
