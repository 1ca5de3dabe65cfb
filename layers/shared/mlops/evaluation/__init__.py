"""Evaluation of trained models: the approval decision, the Model Registry, the report."""

from __future__ import annotations

from mlops.evaluation.decision import Bounds, Decision, Evaluation, Status, decide, lower_is_better
from mlops.evaluation.evaluate import EvaluationOutcome, TrainingJobDetail, evaluate_training_job

__all__ = [
    "Bounds",
    "Decision",
    "Evaluation",
    "EvaluationOutcome",
    "Status",
    "TrainingJobDetail",
    "decide",
    "evaluate_training_job",
    "lower_is_better",
]
