"""Typed configuration: every setting arrives as an environment variable set in template.yaml."""

from __future__ import annotations

import os
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MissingSetting(RuntimeError):
    """A function was deployed without an environment variable it needs."""


class Settings(BaseModel):
    """All pipeline settings; each field reads the upper-cased environment variable of its name.

    Fields are optional because each function receives only what it needs; ``require`` turns
    a missing one into a clear error naming the variable.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    stage: str = "dev"
    dataset: str = "used_cars"
    raw_bucket: str | None = None
    validated_bucket: str | None = None
    quarantine_bucket: str | None = None
    curated_bucket: str | None = None
    artifacts_bucket: str | None = None
    ledger_table: str | None = None
    idempotency_table: str | None = None
    glue_database: str | None = None
    glue_job_name: str | None = None
    preparation_max_wait_minutes: int = Field(default=240, ge=1)
    # Ingest dates of validated data a run is prepared and trained on, ending at its own
    # (0: the run's rows only). The latest copy of each key wins (mlops.preparation.window).
    training_window_days: int = Field(default=7, ge=0)
    event_bus_name: str = "default"
    site_spec_uri: str | None = None
    max_pages: int = Field(default=1000, ge=1)
    max_items: int = Field(default=100_000, ge=1)
    # Bytes a raw object may decode to (gzip expanded) before validation refuses it.
    max_decompressed_bytes: int = Field(default=256 * 1024**2, ge=1)
    # Decoded bytes validation reads, checks and writes at a time: its memory per object.
    validation_chunk_bytes: int = Field(default=64 * 1024**2, ge=1024)
    # Objects stored larger than this are validated by the Glue job, not in the function.
    validation_glue_min_bytes: int | None = Field(default=None, ge=1)
    validation_glue_job_name: str | None = None
    politeness_delay_seconds: float = Field(default=0.0, ge=0)
    # A crawl stops (FAILED, nothing landed, a notification) once more than this share of the
    # detail pages it read lack a required field: the site's layout no longer matches the spec,
    # and landing the rest would train on a skewed sample. 1 never stops (a share cannot exceed
    # it). Judged only after scrape_broken_min_pages pages, so a few bad listings first do not.
    scrape_max_broken_share: float = Field(default=0.5, gt=0, le=1)
    scrape_broken_min_pages: int = Field(default=20, ge=1)
    training_role_arn: str | None = None
    training_image_uri: str | None = None
    training_instance_type: str = "ml.m5.large"
    training_max_runtime_seconds: int = 3600
    training_use_spot: bool = True
    training_max_wait_seconds: int = 7200
    training_hyperparameters: str = "{}"
    model_package_group: str | None = None
    approval_policy: Literal["auto", "manual"] = "auto"
    champion_margin: float = 0.0
    endpoint_name: str | None = None
    inference_image_uri: str | None = None
    serverless_memory_mb: int = 2048
    serverless_max_concurrency: int = 5
    endpoint_instance_type: str | None = None
    sagemaker_execution_role_arn: str | None = None
    notification_topic_arn: str | None = None
    # Monitoring (mlops.monitoring): the drift alarm's number of drifted columns (features and
    # the target), and how much worse than at approval the fresh metric may get.
    drift_alarm_features: int = Field(default=1, ge=1)
    fresh_quality_threshold: float = Field(default=1.25, gt=1)
    # Inference capture (mlops.web.capture): the Firehose stream, and the percent of predicted
    # rows sent to it. No stream name: nothing is captured (tests, a template without it).
    capture_stream_name: str | None = None
    capture_sampling_percent: float = Field(default=100.0, ge=0, le=100)
    alarm_names: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        names = (name for name in cls.model_fields if name.upper() in os.environ)
        return cls.model_validate({name: os.environ[name.upper()] for name in names})

    def require(self, name: str) -> str:
        value = getattr(self, name)
        if value in (None, ""):
            raise MissingSetting(f"environment variable {name.upper()} is not set")
        return str(value)


@cache
def _cached(snapshot: frozenset[tuple[str, str]]) -> Settings:
    return Settings.from_env()


def get_settings() -> Settings:
    """Settings for the current environment, re-read when the environment changes."""
    keys = {name.upper() for name in Settings.model_fields}
    return _cached(frozenset((k, v) for k, v in os.environ.items() if k in keys))
