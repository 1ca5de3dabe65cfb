"""SageMaker script-mode training entry point for the scikit-learn container.

SageMaker runs ``python train.py --key value ...`` with the hyperparameters as arguments and
the channels mounted under ``/opt/ml/input/data/<channel>`` (``SM_CHANNEL_<NAME>``). The same
script runs locally: every path falls back to a directory under the working directory.

Runs on Python 3.10+ (the container's interpreter): no 3.11+ syntax or stdlib.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tarfile
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

HERE = Path(__file__).resolve().parent
SAMPLE_POINTS = 500
IMPORTANCE_ROWS = 500
# HistGradientBoosting bins categories into at most 255 values.
MAX_CATEGORIES = 255
DECISION_METRIC = {"regression": "rmse", "classification": "f1_macro"}


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(name, default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """SageMaker passes paths as ``SM_*`` variables and hyperparameters as ``--key value``."""
    parser = argparse.ArgumentParser(description="Train a gradient-boosted model on a curated run.")
    local = Path.cwd()
    paths = {
        "model-dir": ("SM_MODEL_DIR", local / "model"),
        "train": ("SM_CHANNEL_TRAIN", local / "data/train"),
        "validation": ("SM_CHANNEL_VALIDATION", local / "data/validation"),
        "test": ("SM_CHANNEL_TEST", local / "data/test"),
        "preprocessing": ("SM_CHANNEL_PREPROCESSING", local / "data/preprocessing"),
        "output-data-dir": ("SM_OUTPUT_DATA_DIR", local / "output/data"),
        "output-dir": ("SM_OUTPUT_DIR", local / "output"),
    }
    for name, (var, default) in paths.items():
        parser.add_argument(
            f"--{name}", f"--{name.replace('-', '_')}", default=_env(var, str(default))
        )
    # Optional channel: present only while a model is in production.
    parser.add_argument("--champion", default=_env("SM_CHANNEL_CHAMPION", None))

    hp = parser.add_argument_group("hyperparameters")
    hp.add_argument("--max-iter", "--max_iter", type=int, default=500)
    hp.add_argument("--learning-rate", "--learning_rate", type=float, default=0.05)
    hp.add_argument("--max-leaf-nodes", "--max_leaf_nodes", type=int, default=15)
    hp.add_argument("--min-samples-leaf", "--min_samples_leaf", type=int, default=20)
    hp.add_argument("--l2-regularization", "--l2_regularization", type=float, default=0.0)
    hp.add_argument("--patience", type=int, default=20)
    hp.add_argument("--random-state", "--random_state", type=int, default=42)
    hp.add_argument("--run-id", "--run_id", default="")
    hp.add_argument("--dataset", default="")
    hp.add_argument("--contract-version", "--contract_version", default="")
    # SageMaker may add hyperparameters of its own; unknown ones must not fail the job.
    args, _unknown = parser.parse_known_args(argv)
    return args


def read_split(channel: str | Path) -> pd.DataFrame:
    """All parquet files of a channel directory, in name order."""
    files = sorted(Path(channel).rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no parquet files in channel {channel}")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def read_artifact(channel: str | Path) -> dict[str, Any]:
    """The preparation's ``preprocessing.json`` (found anywhere under the channel)."""
    found = sorted(Path(channel).rglob("preprocessing.json"))
    if not found:
        raise FileNotFoundError(f"preprocessing.json not found in {channel}")
    artifact = json.loads(found[0].read_text())
    for key in ("feature_names", "target", "task"):
        if key not in artifact:
            raise ValueError(f"preprocessing.json lacks {key!r}")
    if artifact["task"] not in DECISION_METRIC:
        raise ValueError(f"unknown task {artifact['task']!r}")
    return artifact


def _labels(y: pd.Series, artifact: dict[str, Any]) -> pd.Series:
    """Class labels as names: a target stored as codes into ``classes`` is decoded."""
    classes = artifact.get("classes") or []
    if classes and pd.api.types.is_integer_dtype(y) and y.between(0, len(classes) - 1).all():
        return y.map(dict(enumerate(classes))).astype(str)
    return y.astype(str)


def xy(frame: pd.DataFrame, artifact: dict[str, Any]) -> tuple[pd.DataFrame, pd.Series]:
    """Model inputs (the artifact's feature columns, in order) and the target."""
    features = list(artifact["feature_names"])
    missing = [c for c in [*features, artifact["target"]] if c not in frame.columns]
    if missing:
        raise ValueError(f"columns missing from the split: {missing}")
    frame = frame[frame[artifact["target"]].notna()]
    y = frame[artifact["target"]]
    y = _labels(y, artifact) if artifact["task"] == "classification" else y.astype(float)
    return frame[features], y


def categorical_features(x: pd.DataFrame, artifact: dict[str, Any]) -> list[str]:
    """Categorical columns HistGradientBoosting can take natively (codes below 255)."""
    wanted = [c for c in artifact.get("categorical_features", []) if c in x.columns]
    return [c for c in wanted if x[c].max(skipna=True) < MAX_CATEGORIES]


def _estimator(task: str, args: argparse.Namespace, max_iter: int, categorical: list[str]) -> Any:
    params = {
        "max_iter": max_iter,
        "learning_rate": args.learning_rate,
        "max_leaf_nodes": args.max_leaf_nodes,
        "min_samples_leaf": args.min_samples_leaf,
        "l2_regularization": args.l2_regularization,
        "categorical_features": categorical or None,
        # Early stopping is ours, on the validation split (sklearn's would carve out its own).
        "early_stopping": False,
        "random_state": args.random_state,
    }
    if task == "regression":
        return HistGradientBoostingRegressor(**params)
    return HistGradientBoostingClassifier(**params)


def best_iteration(
    model: Any, x_val: pd.DataFrame, y_val: pd.Series, task: str, patience: int
) -> int:
    """Iterations with the lowest validation loss (stops scanning after ``patience`` worse ones)."""
    if task == "regression":
        stages = (mean_squared_error(y_val, p) for p in model.staged_predict(x_val))
    else:
        labels = list(model.classes_)
        stages = (log_loss(y_val, p, labels=labels) for p in model.staged_predict_proba(x_val))
    best, best_loss, since = 1, math.inf, 0
    for i, loss in enumerate(stages, start=1):
        if loss < best_loss - 1e-12:
            best, best_loss, since = i, loss, 0
        else:
            since += 1
            if since >= patience:
                break
    return best


def fit(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    artifact: dict[str, Any],
    args: argparse.Namespace,
) -> tuple[Any, int]:
    """Fit on train, pick the iteration count on validation, refit to that count."""
    task = artifact["task"]
    x_train, y_train = xy(train, artifact)
    x_val, y_val = xy(validation, artifact)
    if len(x_train) == 0:
        raise ValueError("the train split has no labelled rows")
    categorical = categorical_features(x_train, artifact)
    probe = _estimator(task, args, args.max_iter, categorical).fit(x_train, y_train)
    if len(x_val) == 0:
        return probe, probe.n_iter_
    best = best_iteration(probe, x_val, y_val, task, args.patience)
    if best == probe.n_iter_:
        return probe, best
    # Same data and seed without subsampling: the refit equals the probe truncated at ``best``.
    return _estimator(task, args, best, categorical).fit(x_train, y_train), best


def baseline(train: pd.DataFrame, artifact: dict[str, Any]) -> Any:
    """The naive model to beat: the training mean, or the majority class (prior probabilities)."""
    x, y = xy(train, artifact)
    if artifact["task"] == "regression":
        return DummyRegressor(strategy="mean").fit(x, y)
    return DummyClassifier(strategy="prior").fit(x, y)


def scores(model: Any, x: pd.DataFrame, y: pd.Series, task: str) -> dict[str, float]:
    """Test metrics: rmse, mae, r2 (regression); accuracy, f1_macro, log_loss, roc_auc (binary)."""
    pred = model.predict(x)
    if task == "regression":
        return {
            "rmse": float(np.sqrt(mean_squared_error(y, pred))),
            "mae": float(mean_absolute_error(y, pred)),
            "r2": float(r2_score(y, pred)),
        }
    pred = np.asarray(pred).astype(str)
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
    }
    if hasattr(model, "predict_proba"):
        labels = [str(c) for c in model.classes_]
        proba = model.predict_proba(x)
        out["log_loss"] = float(log_loss(y, proba, labels=labels))
        if len(labels) == 2 and y.nunique() == 2:
            out["roc_auc"] = float(roc_auc_score(y == labels[1], proba[:, 1]))
    return out


def _untar(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        # The "data" filter (refuses links and paths outside ``into``) exists from 3.10.12.
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # pragma: no cover - older container interpreters
            tar.extractall(into)
    return into


def champion_scores(
    champion_dir: str | None,
    test: pd.DataFrame,
    x_test: pd.DataFrame,
    y_test: pd.Series,
    artifact: dict[str, Any],
) -> tuple[dict[str, float] | None, str]:
    """Score the production model on this run's test rows, prepared with ITS artifact.

    The model-ready test columns carry the new run's statistics, which the champion was not
    trained with; the curated split also keeps the cleaned source columns, so the champion
    re-prepares those same rows with its own artifact (``prepare_for_inference``). An
    artifact without an embedded contract is scored on the curated features only when it
    transforms identically. Otherwise the champion is not scored and the note says why.
    """
    if not champion_dir:
        return None, "no champion channel: no model in production"
    archives = sorted(Path(champion_dir).rglob("model.tar.gz"))
    work = Path(tempfile.mkdtemp(prefix="champion-"))
    try:
        root = _untar(archives[0], work) if archives else Path(champion_dir)
        model = joblib.load(next(root.rglob("model.joblib")))
        champ_artifact = json.loads(next(root.rglob("preprocessing.json")).read_text())
        if champ_artifact.get("task") != artifact["task"]:
            return None, "champion solves a different task"
        if "contract" in champ_artifact:
            from mlops.ml.preprocessing import prepare_for_inference

            rows = test.loc[x_test.index]
            features = prepare_for_inference(rows, champ_artifact)
            x = features[list(champ_artifact["feature_names"])]
            return scores(model, x, y_test, artifact["task"]), "scored on the same test rows"
        if _same_transform(champ_artifact, artifact):
            return scores(model, x_test, y_test, artifact["task"]), "scored on curated features"
        return None, "champion artifact cannot re-prepare these rows: not scored"
    except StopIteration:
        return None, "champion artifact lacks model.joblib or preprocessing.json"
    except Exception as error:  # a broken champion must not block a new model's evaluation
        traceback.print_exc()
        return None, f"champion could not be scored: {type(error).__name__}: {error}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


_RUN_KEYS = {"run_id", "dataset", "created_at", "fitted_at", "rows", "contract_version"}


def _fitted_part(artifact: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in artifact.items() if k not in _RUN_KEYS}


def _same_transform(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return _fitted_part(a) == _fitted_part(b)


def importance(model: Any, x: pd.DataFrame, y: pd.Series, task: str, seed: int) -> dict[str, float]:
    """Permutation importance on a bounded sample of the test split (decision metric's scorer)."""
    sample = x.sample(n=min(len(x), IMPORTANCE_ROWS), random_state=seed)
    scoring = "neg_root_mean_squared_error" if task == "regression" else "f1_macro"
    result = permutation_importance(
        model, sample, y.loc[sample.index], scoring=scoring, n_repeats=3, random_state=seed
    )
    pairs = zip(x.columns, result.importances_mean, strict=True)
    return {name: float(v) for name, v in sorted(pairs, key=lambda p: -p[1])}


def evaluate(
    model: Any,
    naive: Any,
    test: pd.DataFrame,
    artifact: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The ``evaluation.json`` document (shape in docs/ARCHITECTURE.md, "Model artifact")."""
    task = artifact["task"]
    x, y = xy(test, artifact)
    if len(x) == 0:
        raise ValueError("the test split has no labelled rows")
    champion, note = champion_scores(args.champion, test, x, y, artifact)
    rows = x.sample(n=min(len(x), SAMPLE_POINTS), random_state=args.random_state).index
    pred = pd.Series(model.predict(x), index=x.index)
    doc: dict[str, Any] = {
        "task": task,
        "metric": DECISION_METRIC[task],
        "higher_is_better": task == "classification",
        "candidate": scores(model, x, y, task),
        "baseline": scores(naive, x, y, task),
        "champion": champion,
        "champion_note": note,
        "test_rows": len(x),
        "sample": {
            "y_true": _jsonable(y.loc[rows].tolist()),
            "y_pred": _jsonable(pred.loc[rows].tolist()),
        },
        "feature_importance": importance(model, x, y, task, args.random_state),
        "confusion_matrix": None,
    }
    if task == "classification":
        labels = [str(c) for c in model.classes_]
        matrix = confusion_matrix(y, pred.astype(str), labels=labels)
        doc["confusion_matrix"] = {"labels": labels, "matrix": matrix.tolist()}
    return doc


def _jsonable(values: list[Any]) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def copy_inference_code(model_dir: Path) -> None:
    """Make the artifact self-contained: inference.py plus the ``mlops.ml`` feature code.

    The SageMaker scikit-learn serving container imports ``code/inference.py`` with ``code/``
    on the path, so the same feature code that prepared the data transforms requests.
    """
    code = model_dir / "code"
    (code / "mlops" / "ml").mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / "inference.py", code / "inference.py")
    # No code/requirements.txt: the serving container would pip-install it on every cold
    # start, and serving needs nothing beyond the container's numpy, pandas and sklearn.
    import mlops

    package = Path(mlops.__file__).resolve().parent
    (code / "mlops" / "__init__.py").write_text((package / "__init__.py").read_text())
    ml = package / "ml"
    if ml.is_dir():
        for source in ml.rglob("*.py"):
            target = code / "mlops" / "ml" / source.relative_to(ml)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        for data in ml.rglob("*.json"):
            shutil.copy2(data, code / "mlops" / "ml" / data.relative_to(ml))


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train, evaluate and write the model directory; returns the evaluation document."""
    started = time.perf_counter()
    artifact = read_artifact(args.preprocessing)
    train_df = read_split(args.train)
    validation_df = read_split(args.validation)
    test_df = read_split(args.test)
    model, iterations = fit(train_df, validation_df, artifact, args)
    naive = baseline(train_df, artifact)
    doc = evaluate(model, naive, test_df, artifact, args)
    doc["training_seconds"] = round(time.perf_counter() - started, 3)
    doc["iterations"] = iterations
    doc["train_rows"] = len(train_df)
    doc["validation_rows"] = len(validation_df)
    doc["model"] = {
        "dataset": args.dataset or artifact.get("dataset", ""),
        "contract_version": args.contract_version or artifact.get("contract_version", ""),
        "run_id": args.run_id or artifact.get("run_id", ""),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "preprocessing.json").write_text(json.dumps(artifact, indent=2))
    (model_dir / "evaluation.json").write_text(json.dumps(doc, indent=2, allow_nan=False))
    copy_inference_code(model_dir)
    output_data = Path(args.output_data_dir)
    output_data.mkdir(parents=True, exist_ok=True)
    (output_data / "evaluation.json").write_text(json.dumps(doc, indent=2))
    return doc


def write_failure(output_dir: str | Path, reason: str) -> None:
    """SageMaker reads ``<output dir>/failure`` into the job's FailureReason."""
    path = Path(output_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "failure").write_text(reason[:1024])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        doc = train(args)
    except Exception as error:
        traceback.print_exc()
        write_failure(args.output_dir, f"{type(error).__name__}: {error}")
        return 1
    metric = doc["metric"]
    # One line per figure so SageMaker metric definitions can scrape them from the log.
    print(f"candidate {metric}={doc['candidate'][metric]:.6g}")
    print(f"baseline {metric}={doc['baseline'][metric]:.6g}")
    print(f"training_seconds={doc['training_seconds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
