"""`mlops cost` and the run summary's cost: the template's settings read with the project's own
template loader, runs read from the ledger (or a `mlops local run --json` summary), and the
figures of ``mlops.costs`` put into words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from localcloud.template import Resolver, Template
from mlops import costs
from mlops.deployment import MIN_INSTANCES
from mlops.settings import Settings


def settings_from_template(template: Template) -> costs.PipelineSettings:
    """What the template deploys, as far as cost goes, with its parameters resolved."""
    resolve = Resolver(template, {}, {}, template.conditions).resolve
    resources = template.resources
    functions = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        props = resource["Properties"]
        functions[logical_id] = costs.FunctionSettings(
            memory_mb=int(resolve(props.get("MemorySize", 128))),
            timeout_seconds=int(resolve(props.get("Timeout", 3))),
            architecture=(resolve(props.get("Architectures")) or ["x86_64"])[0],
        )

    def glue(logical_id: str) -> costs.GlueJobSettings:
        props = (resources.get(logical_id) or {}).get("Properties") or {}
        return costs.GlueJobSettings(
            worker_type=str(resolve(props.get("WorkerType", "G.1X"))),
            workers=int(resolve(props.get("NumberOfWorkers", 2))),
        )

    schedules: dict[str, costs.Schedule] = {}
    scrape = costs.Schedule(expression="rate(1 day)", enabled=False)
    for function_id, resource in template.sam["Resources"].items():
        events = (resource.get("Properties") or {}).get("Events") or {}
        for event_id, event in events.items():
            if event.get("Type") != "Schedule":
                continue
            schedule = costs.Schedule(
                expression=str(resolve(event["Properties"]["Schedule"])),
                enabled=template.schedule_enabled(function_id, event_id),
            )
            if function_id == "ScrapeFunction":
                scrape = schedule
            else:
                schedules[function_id] = schedule
    parameters = template.parameters
    training_env = _environment(resources.get("StartTrainingFunction"), resolve)
    spot = training_env.get("TRAINING_USE_SPOT")
    count = _counter(resources.values())
    return costs.PipelineSettings(
        stage=parameters.get("Stage", "dev"),
        functions=functions,
        preparation_job=glue("PreparationJob"),
        validation_job=glue("ValidateLargeJob"),
        training_instance_type=parameters.get("TrainingInstanceType", "ml.m5.large"),
        # The start_training function's settings decide; unset, Settings' default (spot) holds.
        training_spot=(
            str(spot).lower() == "true"
            if spot is not None
            else bool(Settings.model_fields["training_use_spot"].default)
        ),
        serverless_memory_mb=int(parameters.get("ServerlessMemoryMB", 2048)),
        endpoint_instance_type=parameters.get("EndpointInstanceType", "ml.m5.large"),
        # Autoscaling's floor: what deploy registers as the variant's minimum capacity.
        endpoint_min_instances=MIN_INSTANCES,
        instance_endpoint=bool(template.conditions.get("IsProd")),
        scrape_schedule=scrape,
        other_schedules=schedules,
        alarms=count("AWS::CloudWatch::Alarm"),
        kms_keys=count("AWS::KMS::Key"),
        dashboards=count("AWS::CloudWatch::Dashboard"),
    )


def _environment(resource: Mapping[str, Any] | None, resolve: Any) -> dict[str, Any]:
    props = (resource or {}).get("Properties") or {}
    variables = (props.get("Environment") or {}).get("Variables") or {}
    out = {}
    for name, value in variables.items():
        try:
            out[name] = resolve(value)
        except Exception:  # a resource's attribute, unknown before provisioning
            continue
    return out


def _counter(resources: Iterable[Mapping[str, Any]]) -> Any:
    types = [resource["Type"] for resource in resources]
    return lambda kind: types.count(kind)


def load_settings(
    project_root: Path, parameters: Mapping[str, str] | None = None, *, config_env: str = "dev"
) -> costs.PipelineSettings:
    return settings_from_template(Template.load(project_root, parameters, config_env=config_env))


def runs_from_summary(summary: Any) -> dict[str, list[dict[str, Any]]]:
    """The runs of `mlops local run --json` output: one summary object or a list of them."""
    summaries = summary if isinstance(summary, list) else [summary]
    return {str(s["run_id"]): list(s.get("stages") or []) for s in summaries if s.get("run_id")}


def runs_from_view(view: Any) -> dict[str, list[dict[str, Any]]]:
    """The ledger's runs, newest first (dead letters without a run id left out)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    latest: dict[str, str] = {}
    for item in view.items():
        if item.run_id == "unknown" or item.is_dlq:
            continue
        runs.setdefault(item.run_id, []).append(item.as_dict())
        stamp = item.started_at or item.ended_at or ""
        latest[item.run_id] = max(latest.get(item.run_id, ""), stamp)
    return {run: runs[run] for run in sorted(runs, key=lambda r: latest[r], reverse=True)}


def typical_run(run_costs: Sequence[costs.RunCost]) -> costs.RunCost | None:
    """The run a month is projected from: the newest that reached training, else the newest."""
    trained = [run for run in run_costs if any(s.stage == "train" for s in run.stages)]
    return (trained or list(run_costs) or [None])[0]


def report(
    runs: Mapping[str, list[dict[str, Any]]],
    settings: costs.PipelineSettings,
    assumptions: costs.Assumptions,
    *,
    runs_per_month: float | None = None,
) -> dict[str, Any]:
    """Everything `mlops cost` prints, as one JSON-able object."""
    prices = costs.load_prices()
    run_costs = [
        costs.run_cost(run_id, items, settings, prices, assumptions)
        for run_id, items in runs.items()
    ]
    month = costs.month_projection(
        typical_run(run_costs), settings, prices, assumptions, runs=runs_per_month
    )
    return {
        "prices": {"as_of": prices.as_of.isoformat(), "region": prices.region},
        "stage": settings.stage,
        "runs": [run.as_dict() for run in run_costs],
        "month": month.as_dict(),
        "assumptions": {
            name: {"value": value, "why": costs.Assumptions.model_fields[name].description}
            for name, value in assumptions.model_dump().items()
        },
        "comparison": costs.seed_comparison(month),
    }


def render(data: Mapping[str, Any]) -> str:
    """`mlops cost`'s text: a line per run, the month, the assumptions, the comparison."""
    money = costs.money
    prices = data["prices"]
    lines = [
        f"AWS cost, {prices['region']} on-demand list prices of {prices['as_of']} "
        f"(stage {data['stage']}; free tiers not applied)"
    ]
    if not data["runs"]:
        lines.append("  no run in the ledger")
    for run in data["runs"]:
        parts = ", ".join(f"{s['stage']} {money(s['usd'])}" for s in run["stages"])
        lines.append(f"  {run['run_id']}  {money(run['usd'])}  ({parts})")
    month = data["month"]
    enabled = "" if month["schedule_enabled"] else ", schedule disabled in this stage"
    based = month["based_on_run"] or "no run"
    lines.append(
        f"A month: {month['runs_per_month']:.1f} runs at {month['schedule']}{enabled}, "
        f"each like {based}"
    )
    for key, label in (
        ("pipeline", "runs"),
        ("storage", "storage added"),
        ("fixed", "schedules, alarms, keys, metrics"),
        ("web", "web API"),
    ):
        lines.append(f"  {label:<36} {money(month[key]['usd']):>10}")
    lines.append(
        f"  {'endpoint, serverless':<36} {money(month['serverless_endpoint']['usd']):>10}"
        f"  -> month {money(month['total_with_serverless_endpoint_usd'])}"
    )
    instance = month["instance_endpoint"]["lines"][0]["item"].split("(", 1)[-1].rstrip(")")
    lines.append(
        f"  {'endpoint, instances (' + instance + ')':<36} "
        f"{money(month['instance_endpoint']['usd']):>10}"
        f"  -> month {money(month['total_with_instance_endpoint_usd'])}"
    )
    for note in month["notes"]:
        lines.append(f"  note: {note}")
    figures = _figures_used(data["runs"])
    if figures:
        lines.append(f"Durations billed for {data['runs'][0]['run_id']}:")
        lines += [f"  {figure}" for figure in figures]
    lines.append(
        "Assumed: "
        + "; ".join(f"{name}={a['value']:g}" for name, a in data["assumptions"].items())
        + " (mlops cost --json says why each)"
    )
    lines.append(data["comparison"])
    return "\n".join(lines)


def _figures_used(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Which duration each billed-by-time line of the newest run rests on."""
    if not runs:
        return []
    out = []
    for stage in runs[0]["stages"]:
        for line in stage["lines"]:
            if line["unit"] in ("DPU-hour", "instance-hour") or (
                line["unit"] == "GB-second" and line["basis"] != "assumed"
            ):
                out.append(f"{stage['stage']}: {line['basis']}, {line['note']}")
    return out


def run_cost_line(
    run_id: str, items: Sequence[Mapping[str, Any]], settings: costs.PipelineSettings
) -> tuple[str, dict[str, Any]]:
    """The run summary's cost: one line of text and its JSON."""
    run = costs.run_cost(run_id, items, settings)
    parts = ", ".join(f"{s.stage} {costs.money(s.usd)}" for s in run.stages)
    text = f"  cost on AWS (estimated, us-east-1 list prices): {costs.money(run.usd)} ({parts})"
    return text + "; details: mlops cost --run " + run_id, run.as_dict()
