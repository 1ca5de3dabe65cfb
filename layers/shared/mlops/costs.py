"""What a run costs on AWS, and what a month of runs and serving would cost.

Pure functions (no AWS calls) over three inputs: the run ledger's items of a run (durations,
counts and the job details the stages record), the template's settings (``PipelineSettings``:
memory, timeouts, Glue workers, instance types, spot, schedules, alarms) and the committed price
table ``mlops/data/aws_prices.json`` (us-east-1 on-demand list prices with their date and
source). Every figure says how it was obtained: ``measured`` (the ledger or the job recorded
it), ``estimated`` (derived from measured figures by a stated rule) or ``assumed`` (a stated
parameter, see ``Assumptions``). Free tiers are not applied: they are per account, not per
pipeline.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# AWS's pricing pages and calculator count a month as 730 hours.
HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
GIB = 1024**3
SEED_ESTIMATE = "at least a few thousand dollars per month"
# The low end of "a few thousand": the comparison is made against the most favourable reading.
SEED_LOW_END_USD = 2000.0

Basis = Literal["measured", "estimated", "assumed"]
STAGES = ("scrape", "validate", "prepare", "train", "evaluate", "deploy")

# Each pipeline role's function (template logical ids).
FUNCTIONS = {
    "scrape": "ScrapeFunction",
    "validate": "ValidateFunction",
    "start_preparation": "StartPreparationFunction",
    "start_training": "StartTrainingFunction",
    "evaluate": "EvaluateFunction",
    "deploy": "DeployFunction",
    "web": "WebFunction",
}

# S3 requests a stage makes, (PUT-class, GET-class), as a function of the objects it handles.
# Assumed from the code's writes, not counted: S3 request charges are a rounding error next to
# compute, so a count off by a few changes nothing a person would decide on.
_S3_REQUESTS: dict[str, tuple[str, Any]] = {
    # Each part is kept in the crawl checkpoint, copied to the raw zone, and the checkpoint
    # state saved; plus the first checkpoint and the manifest. One GET: the site spec.
    "scrape": ("3 PUT per part + 2, 1 GET", lambda n: (3 * n + 2, 1)),
    # Per object: validated parquet, report, quarantined rows and their CSV; HEAD and GET.
    "validate": ("4 PUT and 2 GET per object", lambda n: (4 * n, 2 * n)),
    # Spark's part files of three splits, artifacts, manifest, frozen contract; reads every
    # validated file plus contract and script.
    "prepare": ("8 PUT, 1 GET per validated object + 2", lambda n: (8, n + 2)),
    # Channels staged (3 splits, preprocessing, source), model and output archives uploaded.
    "train": ("3 PUT, 6 GET", lambda n: (3, 6)),
    # The model archive read; evaluation, statistics and report written.
    "evaluate": ("3 PUT, 1 GET", lambda n: (3, 1)),
}


class UnknownPrice(KeyError):
    """The price table has no entry for what a run used (an instance type, a worker type)."""

    def __str__(self) -> str:
        key = self.args[0]
        return f"no price for {key!r} in mlops/data/aws_prices.json: add it with its source"


# ---------------------------------------------------------------------- price table
class PriceEntry(BaseModel):
    """One list price: where to check it, and either the copy that confirmed it or why not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: float = Field(ge=0)
    unit: str
    source: str = Field(pattern=r"^https://")
    confirmed_by: str | None = Field(default=None, pattern=r"^https://")
    assumed: str | None = None

    @model_validator(mode="after")
    def _confirmed_or_assumed(self) -> PriceEntry:
        if (self.confirmed_by is None) == (self.assumed is None):
            raise ValueError("a price is either confirmed_by a page or assumed, with the reason")
        return self


class PriceTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    as_of: date
    region: str
    currency: Literal["USD"]
    basis: str
    prices: dict[str, PriceEntry]

    def rate(self, key: str) -> float:
        try:
            return self.prices[key].price
        except KeyError:
            raise UnknownPrice(key) from None


def load_prices(text: str | None = None) -> PriceTable:
    """The committed price table (``text`` stands in for it in tests)."""
    if text is None:
        text = resources.files("mlops").joinpath("data/aws_prices.json").read_text()
    return PriceTable.model_validate(json.loads(text))


# ---------------------------------------------------------------------- settings
class FunctionSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    memory_mb: int = Field(ge=128)
    timeout_seconds: int = Field(ge=1)
    architecture: Literal["x86_64", "arm64"] = "x86_64"


class GlueJobSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    worker_type: str = "G.1X"
    workers: int = Field(default=2, ge=1)


class Schedule(BaseModel):
    model_config = ConfigDict(frozen=True)

    expression: str
    enabled: bool


class PipelineSettings(BaseModel):
    """What the template deploys, as far as cost goes (``localcloud.cost_report`` reads it)."""

    model_config = ConfigDict(frozen=True)

    stage: str = "dev"
    functions: dict[str, FunctionSettings]
    preparation_job: GlueJobSettings = GlueJobSettings()
    validation_job: GlueJobSettings = GlueJobSettings()
    training_instance_type: str = "ml.m5.large"
    training_spot: bool = True
    serverless_memory_mb: int = 2048
    endpoint_instance_type: str = "ml.m5.large"
    # Autoscaling's floor (mlops.deployment.MIN_INSTANCES): what an idle instance endpoint costs.
    endpoint_min_instances: int = Field(default=2, ge=1)
    # Whether this stage deploys the instance-backed endpoint (prod) rather than serverless.
    instance_endpoint: bool = False
    scrape_schedule: Schedule = Schedule(expression="rate(1 day)", enabled=False)
    # Schedules other than the scraper's, by function logical id (the preparation queue sweep).
    other_schedules: dict[str, Schedule] = Field(default_factory=dict)
    alarms: int = 0
    kms_keys: int = 0
    dashboards: int = 0

    def function(self, role: str) -> tuple[str, FunctionSettings]:
        logical_id = FUNCTIONS.get(role, role)
        if logical_id not in self.functions:
            raise KeyError(f"the template has no function {logical_id}")
        return logical_id, self.functions[logical_id]


class Assumptions(BaseModel):
    """Every figure the ledger does not measure; each one is printed with the costs."""

    model_config = ConfigDict(frozen=True)

    requests_per_day: float = Field(
        default=1000, ge=0, description="predictions a day through the web API and the endpoint"
    )
    inference_seconds: float = Field(
        default=0.1, ge=0, description="billed inference time per request on the endpoint"
    )
    request_kb: float = Field(default=2.0, ge=0, description="KB of request payload per prediction")
    response_kb: float = Field(default=1.0, ge=0, description="KB of response per prediction")
    web_seconds: float = Field(
        default=0.2, ge=0, description="web function time per prediction request"
    )
    light_invocation_seconds: float = Field(
        default=1.0,
        ge=0,
        description="time of one invocation of start_preparation, start_training, deploy or the "
        "queue sweep (the ledger does not time them)",
    )
    deploy_invocations: int = Field(
        default=2,
        ge=0,
        description="deploy invocations per run: the package's state change and the endpoint's",
    )
    bytes_per_row: int = Field(
        default=1000,
        ge=0,
        description="S3 bytes kept per row over every zone and version (raw gzip JSON, validated "
        "and curated parquet, quarantine): the ledger counts rows, not bytes",
    )
    log_kb_per_invocation: float = Field(
        default=4.0, ge=0, description="KB of CloudWatch Logs per function invocation"
    )
    glue_log_mb_per_run: float = Field(
        default=1.0, ge=0, description="MB of continuous logging per Glue job run"
    )
    custom_metrics: int = Field(
        default=40,
        ge=0,
        description="custom metrics published in a month: an upper bound, every name the "
        "handlers can publish (21 fixed names plus outcome-named ones, each with Powertools' "
        "service dimension); a metric is billed only in a month it is published",
    )
    ledger_writes_per_stage: int = Field(
        default=3, ge=0, description="ledger write units per stage item (claim/start, finish)"
    )
    ledger_writes_per_object: int = Field(
        default=4, ge=0, description="ledger and idempotency write units per validated object"
    )


# ---------------------------------------------------------------------- results
class CostLine(BaseModel):
    item: str
    quantity: float
    unit: str
    usd: float
    basis: Basis
    note: str = ""


class StageCost(BaseModel):
    stage: str
    lines: list[CostLine]

    @property
    def usd(self) -> float:
        return sum(line.usd for line in self.lines)

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "usd": self.usd} | {
            "lines": [line.model_dump() for line in self.lines]
        }


class RunCost(BaseModel):
    run_id: str
    stages: list[StageCost]
    notes: list[str] = Field(default_factory=list)

    @property
    def usd(self) -> float:
        return sum(stage.usd for stage in self.stages)

    def stage_usd(self, stage: str) -> float:
        return sum(s.usd for s in self.stages if s.stage == stage)

    @property
    def stored_gib(self) -> float:
        lines = (line for stage in self.stages for line in stage.lines)
        return sum(line.quantity for line in lines if line.unit == "GB-month")

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "usd": self.usd,
            "stages": [stage.as_dict() for stage in self.stages],
            "notes": self.notes,
        }


class MonthProjection(BaseModel):
    runs_per_month: float
    schedule: str
    schedule_enabled: bool
    based_on_run: str | None
    pipeline: list[CostLine]
    storage: list[CostLine]
    fixed: list[CostLine]
    web: list[CostLine]
    serverless_endpoint: list[CostLine]
    instance_endpoint: list[CostLine]
    notes: list[str] = Field(default_factory=list)

    @staticmethod
    def _sum(lines: Iterable[CostLine]) -> float:
        return sum(line.usd for line in lines)

    @property
    def shared_usd(self) -> float:
        """Everything but the endpoint."""
        return sum(self._sum(x) for x in (self.pipeline, self.storage, self.fixed, self.web))

    @property
    def with_serverless_usd(self) -> float:
        return self.shared_usd + self._sum(self.serverless_endpoint)

    @property
    def with_instance_usd(self) -> float:
        return self.shared_usd + self._sum(self.instance_endpoint)

    def as_dict(self) -> dict[str, Any]:
        groups = ("pipeline", "storage", "fixed", "web", "serverless_endpoint", "instance_endpoint")
        out: dict[str, Any] = {
            "runs_per_month": self.runs_per_month,
            "schedule": self.schedule,
            "schedule_enabled": self.schedule_enabled,
            "based_on_run": self.based_on_run,
        }
        for name in groups:
            lines = getattr(self, name)
            out[name] = {
                "usd": self._sum(lines),
                "lines": [line.model_dump() for line in lines],
            }
        out["total_with_serverless_endpoint_usd"] = self.with_serverless_usd
        out["total_with_instance_endpoint_usd"] = self.with_instance_usd
        out["notes"] = self.notes
        return out


# ---------------------------------------------------------------------- ledger items
class StageRecord(BaseModel):
    """One ledger item, whichever reader produced it: ``mlops.ledger.stages`` keeps ``start``'s
    fields under ``detail`` and ``finish``'s at the top; ``StageItem.as_dict`` merges them."""

    model_config = ConfigDict(extra="ignore")

    stage: str
    status: str = "?"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    counts: dict[str, Any] = Field(default_factory=dict)
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> StageRecord:
        known = {"run_id", "stage", "status", "started_at", "ended_at", "counts", "detail"}
        detail = dict(item.get("detail") or {})
        detail |= {k: v for k, v in item.items() if k not in known}
        return cls.model_validate(
            {k: item.get(k) for k in known if item.get(k) is not None} | {"detail": detail}
        )

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.started_at).total_seconds())

    def number(self, *keys: str) -> float | None:
        """The first of ``keys`` found in counts, then detail, as a number."""
        for source in (self.counts, self.detail):
            for key in keys:
                value = source.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return float(value)
        return None


# ---------------------------------------------------------------------- schedules
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_MINUTES = {"minute": 1, "hour": 60, "day": 1440}


def runs_per_month(expression: str) -> float:
    """Firings a month of an EventBridge schedule expression (cron: counted, approximately)."""
    text = expression.strip()
    match = _RATE.match(text)
    if match:
        every = int(match.group(1)) * _MINUTES[match.group(2).rstrip("s")]
        return HOURS_PER_MONTH * 60 / every
    if text.startswith("cron(") and text.endswith(")"):
        fields = text[5:-1].split()
        if len(fields) == 6:
            minute, hour, dom, month, dow, _year = fields
            per_day = _cron_count(minute, 0, 59) * _cron_count(hour, 0, 23)
            if dow not in ("*", "?"):
                days = DAYS_PER_MONTH * _cron_count(dow, 1, 7) / 7
            elif dom not in ("*", "?"):
                days = float(_cron_count(dom, 1, 31))
            else:
                days = DAYS_PER_MONTH
            months = _cron_count(month, 1, 12) / 12 if month not in ("*", "?") else 1.0
            return per_day * days * months
    raise ValueError(f"not an EventBridge schedule expression: {expression!r}")


_NAMES = {
    name: str(number)
    for names in (
        ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"),
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
    )
    for number, name in enumerate(names, start=1)
}


def _cron_count(field: str, low: int, high: int) -> int:
    for name, number in _NAMES.items():
        field = field.upper().replace(name, number)
    total = 0
    for part in field.split(","):
        base, _, step = part.partition("/")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base and base.replace("-", "").isdigit():
            start, end = (int(x) for x in base.split("-", 1))
        elif base.isdigit():
            start, end = int(base), int(base) if not step else high
        else:  # L, W, 3#2, day names: one firing
            total += 1
            continue
        total += len(range(start, end + 1, int(step) if step.isdigit() else 1))
    return max(total, 1)


# ---------------------------------------------------------------------- pricing
class _Pricer:
    def __init__(
        self, settings: PipelineSettings, prices: PriceTable, assumptions: Assumptions
    ) -> None:
        self.settings = settings
        self.prices = prices
        self.assume = assumptions

    def rate(self, key: str) -> float:
        return self.prices.rate(key)

    def lambda_lines(
        self, role: str, seconds: float, invocations: float, basis: Basis, note: str
    ) -> list[CostLine]:
        logical_id, fn = self.settings.function(role)
        gb_seconds = fn.memory_mb / 1024 * seconds
        arch = "arm" if fn.architecture == "arm64" else "x86"
        log_gb = invocations * self.assume.log_kb_per_invocation * 1024 / GIB
        return [
            CostLine(
                item=f"Lambda {logical_id} ({fn.memory_mb} MB, {fn.architecture})",
                quantity=gb_seconds,
                unit="GB-second",
                usd=gb_seconds * self.rate(f"lambda.{arch}_gb_second"),
                basis=basis,
                note=note,
            ),
            CostLine(
                item=f"Lambda {logical_id} requests",
                quantity=invocations,
                unit="request",
                usd=invocations * self.rate("lambda.request"),
                basis="measured" if basis == "measured" else "estimated",
            ),
            CostLine(
                item="X-Ray traces",
                quantity=invocations,
                unit="trace",
                usd=invocations * self.rate("xray.trace"),
                basis="estimated",
                note="one trace per invocation (Tracing: Active)",
            ),
            CostLine(
                item="CloudWatch Logs ingested",
                quantity=log_gb,
                unit="GB",
                usd=log_gb * self.rate("cloudwatch.logs_ingest_gb"),
                basis="assumed",
                note=f"{self.assume.log_kb_per_invocation:g} KB per invocation",
            ),
        ]

    def glue_lines(
        self, job: GlueJobSettings, seconds: float, basis: Basis, note: str, name: str
    ) -> list[CostLine]:
        minimum = self.rate("glue.minimum_billed_seconds")
        billed = max(minimum, math.ceil(seconds))
        dpus = job.workers * self.rate(f"glue.worker_dpu.{job.worker_type}")
        dpu_hours = dpus * billed / 3600
        floor = ""
        if seconds < minimum:
            floor = f"; billed {billed:g} s (Glue's {minimum:g}-second minimum)"
        log_gb = self.assume.glue_log_mb_per_run * 1024**2 / GIB
        return [
            CostLine(
                item=f"Glue {name} ({job.workers} x {job.worker_type})",
                quantity=dpu_hours,
                unit="DPU-hour",
                usd=dpu_hours * self.rate("glue.dpu_hour"),
                basis=basis,
                note=note + floor,
            ),
            CostLine(
                item="CloudWatch Logs ingested (Glue continuous logging)",
                quantity=log_gb,
                unit="GB",
                usd=log_gb * self.rate("cloudwatch.logs_ingest_gb"),
                basis="assumed",
                note=f"{self.assume.glue_log_mb_per_run:g} MB per job run",
            ),
        ]

    def s3_lines(self, stage: str, objects: float) -> list[CostLine]:
        rule, counts = _S3_REQUESTS[stage]
        puts, gets = counts(objects)
        return [
            CostLine(
                item="S3 requests",
                quantity=puts + gets,
                unit="request",
                usd=puts * self.rate("s3.put_request") + gets * self.rate("s3.get_request"),
                basis="assumed",
                note=rule,
            )
        ]

    def ledger_lines(self, objects: float = 0) -> list[CostLine]:
        a = self.assume
        writes = a.ledger_writes_per_stage + objects * a.ledger_writes_per_object
        reads = 2 + 2 * objects
        return [
            CostLine(
                item="DynamoDB ledger",
                quantity=writes + reads,
                unit="request unit",
                usd=writes * self.rate("dynamodb.write_request_unit")
                + reads * self.rate("dynamodb.read_request_unit"),
                basis="assumed",
                note=f"{writes:g} write and {reads:g} read units",
            )
        ]

    def events(self, count: float, what: str) -> CostLine:
        return CostLine(
            item=f"EventBridge custom events ({what})",
            quantity=count,
            unit="event",
            usd=count * self.rate("eventbridge.custom_event"),
            basis="measured",
        )


# ---------------------------------------------------------------------- a run
def run_cost(
    run_id: str,
    items: Iterable[Mapping[str, Any]],
    settings: PipelineSettings,
    prices: PriceTable | None = None,
    assumptions: Assumptions | None = None,
) -> RunCost:
    """The cost on AWS of one run, stage by stage, from its ledger items."""
    pricer = _Pricer(settings, prices or load_prices(), assumptions or Assumptions())
    records = {}
    for item in items:
        record = StageRecord.from_item(item)
        if record.stage in STAGES:
            records[record.stage] = record
    stages: list[StageCost] = []
    notes: list[str] = []
    for stage in STAGES:
        record = records.get(stage)
        if record is None:
            continue
        lines = _STAGE_COSTS[stage](pricer, record, records, notes)
        stages.append(StageCost(stage=stage, lines=lines))
    rows = _rows(records)
    if rows:
        gib = rows * pricer.assume.bytes_per_row / GIB
        stages.append(
            StageCost(
                stage="storage",
                lines=[
                    CostLine(
                        item="S3 Standard storage of the run's data, one month",
                        quantity=gib,
                        unit="GB-month",
                        usd=gib * pricer.rate("s3.standard_gb_month"),
                        basis="assumed",
                        note=f"{rows:,.0f} rows x {pricer.assume.bytes_per_row:,} bytes",
                    )
                ],
            )
        )
    missing = [s for s in STAGES if s not in records]
    if missing:
        notes.append(f"no ledger item for {', '.join(missing)}: not counted")
    return RunCost(run_id=run_id, stages=stages, notes=notes)


def _rows(records: Mapping[str, StageRecord]) -> float:
    validate, scrape = records.get("validate"), records.get("scrape")
    rows = validate.number("rows_in") if validate else None
    if rows is None and scrape is not None:
        rows = scrape.number("records")
    return rows or 0.0


def _scrape(
    p: _Pricer, rec: StageRecord, records: Mapping[str, StageRecord], notes: list[str]
) -> list[CostLine]:
    invocations = rec.number("invocations") or 1.0
    seconds = rec.seconds
    note = "the scrape item's wall time (politeness delays included: Lambda bills them)"
    if seconds is None:
        seconds, note = 0.0, f"stage {rec.status}: no end recorded, no duration counted"
    lines = p.lambda_lines("scrape", seconds, invocations, "measured", note)
    if invocations > 1:
        lines.append(p.events(invocations - 1, "Scrape Continues"))
    return lines + p.s3_lines("scrape", rec.number("parts") or 0) + p.ledger_lines()


def _validate(
    p: _Pricer, rec: StageRecord, records: Mapping[str, StageRecord], notes: list[str]
) -> list[CostLine]:
    part_counts = rec.detail.get("part_counts") or {}
    objects = rec.number("objects") or float(len(part_counts)) or 1.0
    # The manifest of a crawled run is an object of the raw zone too: it invokes validate.
    invocations = objects + (1 if "scrape" in records else 0)
    _, fn = p.settings.function("validate")
    span = rec.seconds or 0.0
    seconds = min(span, invocations * fn.timeout_seconds)
    note = (
        "the validate item's wall time, first object to completion (objects validated in "
        "parallel overlap, uploads spread over time would overstate it: capped at invocations "
        "x the function's timeout)"
    )
    lines = p.lambda_lines("validate", seconds, invocations, "estimated", note)
    delegated = rec.detail.get("delegated") or {}
    if delegated:
        # validation/* records which job run took an object, not how long it ran.
        for _ in delegated:
            lines += p.glue_lines(
                p.settings.validation_job,
                0.0,
                "estimated",
                "an object validated by the Glue job: its run time is not on the ledger, so "
                "its cost here is a floor",
                "ValidateLargeJob",
            )
        notes.append(f"{len(delegated)} object(s) validated by Glue counted at Glue's minimum")
    if rec.status == "SUCCEEDED":
        lines.append(p.events(1, "Run Validated"))
    return lines + p.s3_lines("validate", objects) + p.ledger_lines(objects)


def _prepare(
    p: _Pricer, rec: StageRecord, records: Mapping[str, StageRecord], notes: list[str]
) -> list[CostLine]:
    lines = p.lambda_lines(
        "start_preparation",
        p.assume.light_invocation_seconds,
        1,
        "assumed",
        "start_preparation's invocation is not timed by the ledger",
    )
    job = p.settings.preparation_job
    worker_type = rec.detail.get("glue_worker_type")
    workers = rec.number("glue_workers")
    if worker_type or workers:
        job = GlueJobSettings(
            worker_type=str(worker_type or job.worker_type), workers=int(workers or job.workers)
        )
    execution = rec.number("glue_execution_seconds")
    if execution is not None:
        basis: Basis = "measured"
        note = (
            f"the job run's ExecutionTime, {execution:g} s (on the local cloud: the executor's "
            "wall time, with staging to and from S3 and local Spark's start, not Glue's workers)"
        )
        seconds = execution
    elif rec.seconds is not None:
        basis, seconds = "estimated", rec.seconds
        note = (
            "no ExecutionTime recorded: the prepare item's wall time, from StartJobRun to the "
            "job's state change (an upper bound)"
        )
    else:
        basis, seconds = "estimated", 0.0
        note = f"stage {rec.status}: no job run time recorded"
    if rec.status == "QUEUED":
        return lines + p.ledger_lines()
    lines += p.glue_lines(job, seconds, basis, note, "PreparationJob")
    objects = (records["validate"].number("objects") or 1.0) if "validate" in records else 1.0
    notes.append(f"prepare: Glue billed from {basis} seconds ({seconds:g} s)")
    return lines + p.s3_lines("prepare", objects) + p.ledger_lines()


def _train(
    p: _Pricer, rec: StageRecord, records: Mapping[str, StageRecord], notes: list[str]
) -> list[CostLine]:
    lines = p.lambda_lines(
        "start_training",
        p.assume.light_invocation_seconds,
        1,
        "assumed",
        "start_training's invocation is not timed by the ledger",
    )
    instance = str(rec.detail.get("instance_type") or p.settings.training_instance_type)
    spot_value = rec.detail.get("spot")
    spot = p.settings.training_spot if spot_value is None else bool(spot_value)
    training = rec.number("seconds", "training_seconds")
    billable = rec.number("billable_seconds")
    discount = p.rate("sagemaker.training.spot_discount")
    basis: Basis
    if billable is not None and (not spot or (training and billable < training)):
        # SageMaker's own billable time already carries the spot saving.
        seconds, basis = billable, "measured"
        note = f"SageMaker's BillableTimeInSeconds, {billable:g} s"
    elif training is not None:
        seconds, basis = training, "measured"
        note = f"TrainingTimeInSeconds, {training:g} s"
        if spot:
            seconds, basis = training * (1 - discount), "estimated"
            note += (
                f", less the assumed {discount:.0%} managed-spot saving (the job's billable "
                "time shows none: the local cloud does not run on spot)"
            )
    elif rec.seconds is not None:
        seconds, basis = rec.seconds, "estimated"
        note = "no training time recorded: the train item's wall time (an upper bound)"
        if spot:
            seconds *= 1 - discount
            note += f", less the assumed {discount:.0%} managed-spot saving"
    else:
        seconds, basis, note = 0.0, "estimated", f"stage {rec.status}: no training time recorded"
    note += "; on the local cloud the script's wall time with staging, on AWS plus image download"
    hourly = p.rate(f"sagemaker.training.{instance}")
    lines.append(
        CostLine(
            item=f"SageMaker training ({instance}{', spot' if spot else ''})",
            quantity=seconds / 3600,
            unit="instance-hour",
            usd=seconds / 3600 * hourly,
            basis=basis,
            note=note,
        )
    )
    notes.append(f"train: billed from {basis} seconds ({seconds:.0f} s)")
    return lines + p.s3_lines("train", 0) + p.ledger_lines()


def _evaluate(
    p: _Pricer, rec: StageRecord, records: Mapping[str, StageRecord], notes: list[str]
) -> list[CostLine]:
    seconds = rec.seconds or 0.0
    lines = p.lambda_lines(
        "evaluate", seconds, 1, "measured", "the evaluate item's wall time: the invocation's work"
    )
    # evaluate notifies people of a failure, a model awaiting approval and a rejection.
    told = rec.detail.get("decision") in ("PendingManualApproval", "Rejected")
    if rec.status == "FAILED" or told:
        lines.append(
            CostLine(
                item="SNS notification",
                quantity=1,
                unit="publish",
                usd=p.rate("sns.publish"),
                basis="measured",
            )
        )
    return lines + p.s3_lines("evaluate", 0) + p.ledger_lines()


def _deploy(
    p: _Pricer, rec: StageRecord, records: Mapping[str, StageRecord], notes: list[str]
) -> list[CostLine]:
    invocations = p.assume.deploy_invocations
    lines = p.lambda_lines(
        "deploy",
        invocations * p.assume.light_invocation_seconds,
        invocations,
        "assumed",
        "the deploy item's wall time includes the endpoint's creation, which Lambda does not bill",
    )
    return lines + p.ledger_lines()


_STAGE_COSTS = {
    "scrape": _scrape,
    "validate": _validate,
    "prepare": _prepare,
    "train": _train,
    "evaluate": _evaluate,
    "deploy": _deploy,
}


# ---------------------------------------------------------------------- a month
def month_projection(
    run: RunCost | None,
    settings: PipelineSettings,
    prices: PriceTable | None = None,
    assumptions: Assumptions | None = None,
    *,
    runs: float | None = None,
) -> MonthProjection:
    """A month at the scrape schedule's rate (or ``runs``) of runs like ``run``, plus what the
    month costs whatever the runs: schedules, alarms, keys, metrics, the web API and the
    endpoint, serverless and instance-backed shown apart."""
    p = _Pricer(settings, prices or load_prices(), assumptions or Assumptions())
    schedule = settings.scrape_schedule
    count = runs if runs is not None else runs_per_month(schedule.expression)
    notes: list[str] = []
    if runs is None and not schedule.enabled:
        notes.append(
            f"the scrape schedule is disabled in stage {settings.stage}: runs come from uploads; "
            "projected as if it fired"
        )
    pipeline: list[CostLine] = []
    storage: list[CostLine] = []
    if run is not None:
        for stage in run.stages:
            if stage.stage == "storage":
                continue
            pipeline.append(
                CostLine(
                    item=f"{stage.stage} x {count:g} runs",
                    quantity=count,
                    unit="run",
                    usd=stage.usd * count,
                    basis="estimated",
                    note=f"{_money(stage.usd)} a run",
                )
            )
        gib = run.stored_gib * count
        storage.append(
            CostLine(
                item="S3 storage the month's runs add",
                quantity=gib,
                unit="GB-month",
                usd=gib * p.rate("s3.standard_gb_month"),
                basis="assumed",
                note="each further month kept adds as much, until lifecycle rules move raw data "
                "to cheaper classes or expire quarantine and old versions",
            )
        )
    else:
        notes.append("no run to project: the month shows only what costs without runs")
    fixed = _fixed_lines(p)
    web, serverless, instance = _serving_lines(p)
    if settings.instance_endpoint:
        notes.append(f"stage {settings.stage} deploys the instance-backed endpoint")
    else:
        notes.append(f"stage {settings.stage} deploys the serverless endpoint")
    return MonthProjection(
        runs_per_month=count,
        schedule=schedule.expression,
        schedule_enabled=schedule.enabled,
        based_on_run=run.run_id if run else None,
        pipeline=pipeline,
        storage=storage,
        fixed=fixed,
        web=web,
        serverless_endpoint=serverless,
        instance_endpoint=instance,
        notes=notes,
    )


def _fixed_lines(p: _Pricer) -> list[CostLine]:
    lines: list[CostLine] = []
    for logical_id, schedule in p.settings.other_schedules.items():
        if not schedule.enabled:
            continue
        firings = runs_per_month(schedule.expression)
        for line in p.lambda_lines(
            logical_id,
            firings * p.assume.light_invocation_seconds,
            firings,
            "assumed",
            f"{schedule.expression}: {firings:,.0f} invocations",
        ):
            lines.append(line.model_copy(update={"item": f"{line.item} (schedule)"}))
    s = p.settings
    lines += [
        CostLine(
            item="CloudWatch alarms",
            quantity=s.alarms,
            unit="alarm-month",
            usd=s.alarms * p.rate("cloudwatch.alarm_month"),
            basis="measured",
            note="counted in the template",
        ),
        CostLine(
            item="KMS customer managed keys",
            quantity=s.kms_keys,
            unit="key-month",
            usd=s.kms_keys * p.rate("kms.key_month"),
            basis="measured",
            note="counted in the template; with rotation on, each year's rotation adds $1 a month",
        ),
        CostLine(
            item="CloudWatch custom metrics",
            quantity=p.assume.custom_metrics,
            unit="metric-month",
            usd=p.assume.custom_metrics * p.rate("cloudwatch.custom_metric_month"),
            basis="assumed",
        ),
        CostLine(
            item="CloudWatch dashboards",
            quantity=s.dashboards,
            unit="dashboard-month",
            usd=s.dashboards * p.rate("cloudwatch.dashboard_month"),
            basis="measured",
            note="counted in the template",
        ),
    ]
    return lines


def _serving_lines(p: _Pricer) -> tuple[list[CostLine], list[CostLine], list[CostLine]]:
    a, s = p.assume, p.settings
    requests = a.requests_per_day * DAYS_PER_MONTH
    per_day = f"{a.requests_per_day:,.0f} requests a day"
    web = [
        CostLine(
            item="API Gateway HTTP API requests",
            quantity=requests,
            unit="request",
            usd=requests * p.rate("apigateway.http_request"),
            basis="assumed",
            note=per_day,
        )
    ]
    web += p.lambda_lines(
        "web", requests * a.web_seconds, requests, "assumed", f"{per_day}, {a.web_seconds:g} s each"
    )
    data_gb = requests * (a.request_kb + a.response_kb) * 1024 / GIB
    seconds = requests * a.inference_seconds
    serverless = [
        CostLine(
            item=f"SageMaker serverless inference ({s.serverless_memory_mb} MB)",
            quantity=seconds,
            unit="second",
            usd=seconds * p.rate(f"sagemaker.serverless.second.{s.serverless_memory_mb}"),
            basis="assumed",
            note=f"{per_day}, {a.inference_seconds:g} s each; nothing while idle",
        ),
        CostLine(
            item="SageMaker serverless data processed",
            quantity=data_gb,
            unit="GB",
            usd=data_gb * p.rate("sagemaker.serverless.data_gb"),
            basis="assumed",
            note=f"{a.request_kb:g} KB in, {a.response_kb:g} KB out a request",
        ),
    ]
    hours = HOURS_PER_MONTH * s.endpoint_min_instances
    instance = [
        CostLine(
            item=f"SageMaker real-time endpoint ({s.endpoint_min_instances} x "
            f"{s.endpoint_instance_type})",
            quantity=hours,
            unit="instance-hour",
            usd=hours * p.rate(f"sagemaker.hosting.{s.endpoint_instance_type}"),
            basis="measured",
            note="autoscaling's floor, every hour of the month whatever the traffic",
        ),
        CostLine(
            item="SageMaker real-time data processed",
            quantity=data_gb,
            unit="GB",
            usd=data_gb * p.rate("sagemaker.hosting.data_gb"),
            basis="assumed",
            note=f"{a.request_kb:g} KB in, {a.response_kb:g} KB out a request",
        ),
        CostLine(
            item="CloudWatch alarms of target tracking",
            quantity=2,
            unit="alarm-month",
            usd=2 * p.rate("cloudwatch.alarm_month"),
            basis="measured",
            note="Application Auto Scaling creates a high and a low alarm",
        ),
    ]
    return web, serverless, instance


# ---------------------------------------------------------------------- words
def _money(usd: float) -> str:
    if usd == 0:
        return "$0"
    if usd >= 1:
        return f"${usd:,.2f}"
    if usd >= 0.0001:
        return f"${usd:.4f}"
    return "<$0.0001"


money = _money


def seed_comparison(month: MonthProjection) -> str:
    """How the projection compares with the seed's estimate of the running cost."""
    serverless, instance = month.with_serverless_usd, month.with_instance_usd
    hours = month.instance_endpoint[0].usd if month.instance_endpoint else 0.0
    text = (
        f"The seed estimated {SEED_ESTIMATE}. By these figures a month of "
        f"{month.runs_per_month:.1f} runs costs {_money(serverless)} with the serverless "
        f"endpoint ({serverless / SEED_LOW_END_USD:.1%} of $2,000, the low end of 'a few "
        f"thousand') and {_money(instance)} with the instance-backed one "
        f"({instance / SEED_LOW_END_USD:.1%}), {_money(hours)} of it the instances' hours."
    )
    if instance >= SEED_LOW_END_USD:
        return text + " The instance-backed endpoint reaches the seed's figure."
    return text + (
        " Neither reaches the seed's figure: a run bills minutes of Lambda, Glue and training, "
        "and only an always-on endpoint bills every hour of the month."
    )
