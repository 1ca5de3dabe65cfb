"""Serving hooks for the SageMaker scikit-learn container (``code/inference.py`` in the model).

Requests carry raw records (the contract's columns); ``predict_fn`` applies the very same
``mlops.ml.preprocessing.prepare_for_inference`` the preparation job used, with the statistics
shipped in the model's ``preprocessing.json``, so training and serving cannot drift apart.

Runs on Python 3.10+ (the container's interpreter).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

JSON = "application/json"
CSV = "text/csv"


def model_fn(model_dir: str) -> dict[str, Any]:
    """Load the estimator, its preprocessing artifact and its identity from the model dir."""
    root = Path(model_dir)
    artifact = json.loads((root / "preprocessing.json").read_text())
    evaluation_path = root / "evaluation.json"
    evaluation = json.loads(evaluation_path.read_text()) if evaluation_path.exists() else {}
    identity = evaluation.get("model", {})
    return {
        "estimator": joblib.load(root / "model.joblib"),
        "artifact": artifact,
        "model": {
            "dataset": identity.get("dataset") or artifact.get("dataset", ""),
            "contract_version": identity.get("contract_version")
            or artifact.get("contract_version", ""),
            "trained_at": identity.get("trained_at", ""),
            "run_id": identity.get("run_id") or artifact.get("run_id", ""),
        },
    }


def _text(body: Any) -> str:
    if isinstance(body, bytes | bytearray):
        return bytes(body).decode("utf-8")
    if hasattr(body, "read"):
        return _text(body.read())
    return str(body)


def input_fn(body: Any, content_type: str) -> pd.DataFrame:
    """Records from JSON (one object, a list, or ``{"instances": [...]}``) or CSV with a header."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == JSON:
        try:
            payload = json.loads(_text(body))
        except json.JSONDecodeError as error:
            raise ValueError(f"request body is not valid JSON: {error}") from error
        if isinstance(payload, dict) and "instances" in payload:
            payload = payload["instances"]
        if isinstance(payload, dict):
            payload = [payload]
        if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
            raise ValueError(
                "JSON body must be an object, a list of objects or {'instances': [...]}"
            )
        if not payload:
            raise ValueError("no records in the request")
        return pd.DataFrame.from_records(payload)
    if kind == CSV:
        text = _text(body)
        if not text.strip():
            raise ValueError("no records in the request")
        return pd.read_csv(io.StringIO(text))
    raise ValueError(f"unsupported content type {content_type!r}: use {JSON} or {CSV}")


def required_columns(artifact: dict[str, Any]) -> list[str]:
    """Feature columns the contract marks required (optional ones are imputed when absent)."""
    contract = artifact.get("contract") or {}
    target = artifact.get("target")
    return [
        name
        for name, spec in contract.get("columns", {}).items()
        if name != target and spec.get("feature", True) and spec.get("required", True)
    ]


def predict_fn(data: pd.DataFrame, model: dict[str, Any]) -> dict[str, Any]:
    """Transform the raw records with the model's own artifact, then predict."""
    from mlops.ml.preprocessing import prepare_for_inference

    artifact = model["artifact"]
    absent = [c for c in required_columns(artifact) if c not in data.columns]
    if absent:
        raise ValueError(f"request lacks required columns: {absent}")
    try:
        features = prepare_for_inference(data, artifact)
    except KeyError as error:
        raise ValueError(f"request lacks required columns: {error}") from error
    wanted = list(artifact["feature_names"])
    missing = [c for c in wanted if c not in features.columns]
    if missing:
        raise ValueError(f"request lacks required columns: {missing}")
    estimator = model["estimator"]
    x = features[wanted]
    result: dict[str, Any] = {"predictions": _plain(estimator.predict(x)), "model": model["model"]}
    if artifact.get("task") == "classification" and hasattr(estimator, "predict_proba"):
        labels = [str(c) for c in estimator.classes_]
        result["probabilities"] = [
            {label: float(p) for label, p in zip(labels, row, strict=True)}
            for row in estimator.predict_proba(x)
        ]
    return result


def _plain(values: np.ndarray) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]


def output_fn(prediction: dict[str, Any], accept: str | None) -> str:
    """JSON ``{"predictions": [...], "model": {...}}`` (+ ``probabilities`` for classifiers)."""
    kind = (accept or JSON).split(";")[0].strip().lower()
    if kind not in (JSON, "*/*", ""):
        raise ValueError(f"unsupported accept type {accept!r}: use {JSON}")
    return json.dumps(prediction)
