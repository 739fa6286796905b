"""The earlier home of evaluation, kept so that old imports work: each part now lives in a module of its own.

Loading: ``model.hub``; scoring: ``engine.scoring``; the protocol card: ``engine.card``; the report files:
``engine.eval_report``; evaluating a checkpoint or a predictions.csv: ``engine.evaluate``; the fold matrix of
``test.py --runs``: ``engine.folds``.
"""

from model.hub import TRAINING_ONLY_MODEL_KEYS, CheckpointMismatchError, load_detector

from .card import protocol_card
from .eval_report import write_report
from .evaluate import evaluate_checkpoint, evaluate_predictions, read_prediction_scores, resolve_test_rows
from .folds import UserErrorRuns, evaluate_runs, runs_by_fold
from .scoring import NonFiniteScoreError, check_finite_scores, score_table

__all__ = [
    "TRAINING_ONLY_MODEL_KEYS",
    "CheckpointMismatchError",
    "NonFiniteScoreError",
    "UserErrorRuns",
    "check_finite_scores",
    "evaluate_checkpoint",
    "evaluate_predictions",
    "evaluate_runs",
    "load_detector",
    "protocol_card",
    "read_prediction_scores",
    "resolve_test_rows",
    "runs_by_fold",
    "score_table",
    "write_report",
]
