"""Serving hooks for the SageMaker scikit-learn container (``code/inference.py`` in the model).

Requests carry raw records (the contract's columns); ``predict_fn`` applies the very same
``mlops.ml.preprocessing.prepare_for_inference`` the preparation job used, with the statistics
shipped in the model's ``preprocessing.json``, so training and serving cannot drift apart.

Bad input gets a client error, never a prediction: a body that is not records, a missing
required column, or a value the contract refuses (out of range, not an allowed option,
unreadable). The container wraps these functions so that anything they raise becomes a 500;
a client error is therefore passed along as a ``Refused`` value and ``output_fn`` answers it
with its status (400, 415 or 406) as the container's own ``worker.Response``.

Runs on Python 3.10+ (the container's interpreter).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

try:  # the SageMaker scikit-learn container's Flask response (a status the client sees)
    from sagemaker_containers.beta.framework.worker import Response as _ContainerResponse
except ImportError:  # pragma: no cover - outside the container
    _ContainerResponse = None

JSON = "application/json"
CSV = "text/csv"


class InvalidInput(ValueError):
    """The request is not what the model's contract accepts (HTTP 400 unless ``status`` says)."""

    def __init__(
        self, message: str, errors: list[dict[str, Any]] | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.errors = errors or []
        self.status = status


class Refused:
    """A client error travelling from ``input_fn``/``predict_fn`` to ``output_fn``."""

    def __init__(self, error: InvalidInput) -> None:
        self.error = error
        self.status = error.status
        self.body = {"message": str(error), "errors": error.errors}


class Answer:
    """A body with a status, shaped like the container's ``worker.Response`` (Flask), for the
    local model server; inside the container the real ``worker.Response`` is used."""

    def __init__(self, body: str, status: int, mimetype: str = JSON) -> None:
        self.status_code = status
        self.mimetype = mimetype
        self._body = body.encode("utf-8")

    def get_data(self) -> bytes:
        return self._body


def _answer(body: str, status: int) -> Any:
    if _ContainerResponse is not None:
        return _ContainerResponse(response=body, status=status, mimetype=JSON)
    return Answer(body, status)


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


def input_fn(body: Any, content_type: str) -> pd.DataFrame | Refused:
    """Records from JSON (one object, a list, or ``{"instances": [...]}``) or CSV with a header;
    a ``Refused`` client error when the body is none of these."""
    try:
        return read_records(body, content_type)
    except InvalidInput as error:
        return Refused(error)


def read_records(body: Any, content_type: str) -> pd.DataFrame:
    """``input_fn``'s records; raises InvalidInput saying why the body holds none."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == JSON:
        try:
            payload = json.loads(_text(body))
        except RecursionError:
            raise InvalidInput("request body is not valid JSON: nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, digit limit
            raise InvalidInput(f"request body is not valid JSON: {error}") from None
        if isinstance(payload, dict) and "instances" in payload:
            payload = payload["instances"]
        if isinstance(payload, dict):
            payload = [payload]
        if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
            raise InvalidInput(
                "JSON body must be an object, a list of objects or {'instances': [...]}"
            )
        if not payload:
            raise InvalidInput("no records in the request")
        return pd.DataFrame.from_records(payload)
    if kind == CSV:
        try:
            text = _text(body)
        except UnicodeDecodeError as error:
            raise InvalidInput(f"request body is not UTF-8 text: {error}") from None
        if not text.strip():
            raise InvalidInput("no records in the request")
        try:
            return pd.read_csv(io.StringIO(text))
        except (ValueError, pd.errors.ParserError) as error:
            raise InvalidInput(f"request body is not CSV with a header row: {error}") from None
    raise InvalidInput(
        f"unsupported content type {content_type!r}: use {JSON} or {CSV}", status=415
    )


def required_columns(artifact: dict[str, Any]) -> list[str]:
    """Feature columns the contract marks required (optional ones are imputed when absent)."""
    contract = artifact.get("contract") or {}
    target = artifact.get("target")
    return [
        name
        for name, spec in contract.get("columns", {}).items()
        if name != target and spec.get("feature", True) and spec.get("required", True)
    ]


def _given(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and not value.strip())


def _expectation(spec: dict[str, Any]) -> str:
    kind = spec.get("type")
    if spec.get("allowed"):
        return "must be one of: " + ", ".join(str(v) for v in spec["allowed"])
    if kind in ("int", "float", "datetime"):
        noun = {"int": "a whole number", "float": "a number", "datetime": "an ISO 8601 date"}
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None and hi is not None:
            return f"must be {noun[kind]} from {lo} to {hi}"
        if lo is not None:
            return f"must be {noun[kind]} of at least {lo}"
        if hi is not None:
            return f"must be {noun[kind]} of at most {hi}"
        return f"must be {noun[kind]}"
    if kind == "bool":
        return "must be true or false"
    return "is not a value the model reads"


def contract_errors(data: pd.DataFrame, artifact: dict[str, Any]) -> list[dict[str, Any]]:
    """Every value of ``data`` the contract shipped in the model refuses, as
    ``{row, field, message}``: a required feature left empty, or a given value that the
    contract's cleaning (the same the training data went through) turns into a missing one
    (out of range, not an allowed option or alias, not a number or date)."""
    from mlops.ml.cleaning import clean

    contract = artifact.get("contract") or {}
    target = artifact.get("target") or contract.get("target")
    if not contract.get("columns"):
        return []
    cleaned = clean(data, contract, training=False)
    errors: list[dict[str, Any]] = []
    for name, spec in contract["columns"].items():
        if name == target or not spec.get("feature", True) or name not in data.columns:
            continue
        given = [_given(v) for v in data[name].tolist()]
        kept = cleaned[name].notna().tolist()
        for row, (was_given, was_kept) in enumerate(zip(given, kept, strict=True)):
            if not was_given and spec.get("required", True):
                errors.append({"row": row, "field": name, "message": "is required"})
            elif was_given and not was_kept:
                errors.append({"row": row, "field": name, "message": _expectation(spec)})
    return errors


def predict_fn(data: pd.DataFrame | Refused, model: dict[str, Any]) -> dict[str, Any] | Refused:
    """Check the raw records against the model's contract, transform them with the model's own
    artifact, then predict; a ``Refused`` client error when the records break the contract."""
    if isinstance(data, Refused):
        return data
    try:
        return _predict(data, model)
    except InvalidInput as error:
        return Refused(error)


def _predict(data: pd.DataFrame, model: dict[str, Any]) -> dict[str, Any]:
    from mlops.ml.preprocessing import prepare_for_inference

    artifact = model["artifact"]
    absent = [c for c in required_columns(artifact) if c not in data.columns]
    if absent:
        raise InvalidInput(f"request lacks required columns: {absent}")
    errors = contract_errors(data, artifact)
    if errors:
        raise InvalidInput("some values do not satisfy the model's contract", errors)
    try:
        features = prepare_for_inference(data, artifact)
    except KeyError as error:
        raise InvalidInput(f"request lacks required columns: {error}") from error
    wanted = list(artifact["feature_names"])
    missing = [c for c in wanted if c not in features.columns]
    if missing:
        raise InvalidInput(f"request lacks required columns: {missing}")
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


def output_fn(prediction: dict[str, Any] | Refused, accept: str | None) -> Any:
    """JSON ``{"predictions": [...], "model": {...}}`` (+ ``probabilities`` for classifiers);
    a client error as ``{"message", "errors"}`` with its status (406 for an unsupported accept)."""
    if isinstance(prediction, Refused):
        return _answer(json.dumps(prediction.body), prediction.status)
    kind = (accept or JSON).split(";")[0].strip().lower()
    if kind not in (JSON, "*/*", ""):
        refused = Refused(
            InvalidInput(f"unsupported accept type {accept!r}: use {JSON}", status=406)
        )
        return _answer(json.dumps(refused.body), refused.status)
    return json.dumps(prediction)
