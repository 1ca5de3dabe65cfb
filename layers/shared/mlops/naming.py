"""Deterministic names for SageMaker and Glue resources.

Derived from dataset, stage and run id so a duplicate event collides with the first job
instead of starting a second one. SageMaker names allow only letters, digits and hyphens.
"""

from __future__ import annotations

import re

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9-]+")


def _slug(text: str) -> str:
    return _NOT_ALLOWED.sub("-", text).strip("-")


def model_package_group(dataset: str, stage: str) -> str:
    return f"mlops-{_slug(dataset)}-{_slug(stage)}"


def endpoint_name(dataset: str, stage: str) -> str:
    return f"mlops-{_slug(dataset)}-{_slug(stage)}"


def training_job_name(dataset: str, run_id: str) -> str:
    """``mlops-<dataset>-<run_id>``, at most 63 characters (the dataset part is cut first)."""
    run = _slug(run_id)
    room = 63 - len("mlops--") - len(run)
    return f"mlops-{_slug(dataset)[: max(room, 1)].strip('-')}-{run}"[:63]


def model_name(dataset: str, version: int, stage: str) -> str:
    return f"mlops-{_slug(dataset)}-{_slug(stage)}-v{version}"


def endpoint_config_name(dataset: str, version: int, stage: str) -> str:
    return f"mlops-{_slug(dataset)}-{_slug(stage)}-v{version}"


# Cost allocation tags (activate them in the Billing console to split cost by them): the
# pipeline stage a resource bills for, and the run it bills for where a resource belongs to one.
COST_STAGE_TAG = "mlops:stage"
COST_RUN_TAG = "mlops:run_id"


def cost_tags(stage: str, run_id: str | None = None) -> list[dict[str, str]]:
    """``Tags`` of a resource created at run time, so cost splits by stage and run."""
    tags = [{"Key": COST_STAGE_TAG, "Value": stage}]
    return tags + ([{"Key": COST_RUN_TAG, "Value": run_id}] if run_id else [])
