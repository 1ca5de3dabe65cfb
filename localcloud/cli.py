"""`mlops`: run the pipeline on the local cloud, follow runs, approve models, publish code."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from localcloud.cloud import PROJECT_ROOT, LocalCloud
from localcloud.template import TemplateError

_EXIT_NO_CLOUD = 3
# A few thousand listings: enough rows for the model to come within ~15% of the noise floor.
DEMO_LISTINGS = 3000


def _echo(text: str) -> None:
    print(text, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="the local cloud").add_subparsers(
        dest="local_command", required=True
    )
    up = local.add_parser("up", help="local cloud + demo site + web app until Ctrl-C")
    up.add_argument("--approval", choices=["auto", "manual"], default=None)
    up.add_argument("--listings", type=int, default=DEMO_LISTINGS)
    _parameter_option(up)
    run = local.add_parser("run", help="one full pipeline run, then a summary")
    run.add_argument("--data", type=Path, help="a CSV/parquet/jsonl.gz file to run instead")
    run.add_argument(
        "--contract", type=Path, help="the dataset contract for --data (default: drafted)"
    )
    _draft_options(run, target_required=False)
    run.add_argument("--listings", type=int, help="demo catalogue size (default 3000)")
    run.add_argument("--approval", choices=["auto", "manual"], default=None)
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    run.add_argument("--timeout", type=float, default=900.0)
    _parameter_option(run)

    status = commands.add_parser(
        "status", help="a run's stage timeline, dead letters and queue (latest run by default)"
    )
    status.add_argument("run_id", nargs="?")
    cost = commands.add_parser(
        "cost",
        help="what each run would cost on AWS and what a month would, from the ledger's "
        "measurements, the template's settings and a dated price table",
    )
    cost.add_argument("--run", dest="run_id", help="only this run")
    cost.add_argument("--json", action="store_true", help="print one JSON object")
    cost.add_argument(
        "--requests-per-day",
        type=float,
        help="predictions a day priced on the endpoints (default 1000)",
    )
    cost.add_argument(
        "--stage-name",
        choices=["dev", "prod"],
        help="price the template as `sam deploy --config-env` would deploy this stage "
        "(default: the running local cloud's parameters, else dev)",
    )
    cost.add_argument("--runs-per-month", type=float, help="instead of the scrape schedule's rate")
    cost.add_argument(
        "--summary",
        type=Path,
        help="price the run(s) of a saved `mlops local run --json` output instead of the "
        "running local cloud's ledger",
    )
    redrive = commands.add_parser(
        "redrive", help="send dead-lettered events back to their functions (asynchronously)"
    )
    redrive.add_argument("--run", dest="run_id", help="only the events of this run")
    redrive.add_argument("--queue", help="only this DLQ (logical id, e.g. ValidateDLQ, or name)")
    redrive.add_argument("--dry-run", action="store_true", help="say what would be sent")
    redrive.add_argument(
        "--stack-name", help="a stack deployed on AWS (default: the running local cloud)"
    )
    invoke = commands.add_parser("invoke", help="invoke one function once with an event file")
    invoke.add_argument("function", help="logical id (ScrapeFunction) or folder name (scrape)")
    invoke.add_argument("event_file", type=Path)
    invoke.add_argument(
        "--demo-site",
        type=int,
        metavar="LISTINGS",
        help="serve the demo site and point a Scheduled Event without start_url at it",
    )
    for name, text in (
        ("approve", "approve a model package version (the newest Approved one serves)"),
        ("reject", "reject a model package version (a serving one is replaced)"),
        ("pin", "serve this Approved version whatever newer ones are approved"),
    ):
        _registry_options(commands.add_parser(name, help=text)).add_argument("version", type=int)
    _registry_options(
        commands.add_parser("unpin", help="clear the pin: the newest Approved version serves")
    )
    _registry_options(
        commands.add_parser("rollback", help="pin the Approved version before the one serving")
    )
    predict = commands.add_parser("predict", help="a prediction through the served model")
    predict.add_argument("payload", help="JSON object with the model's input fields")
    contract = commands.add_parser("contract", help="dataset contracts").add_subparsers(
        dest="contract_command", required=True
    )
    init = contract.add_parser("init", help="draft a contract from a data file")
    init.add_argument("data", type=Path, help="a CSV, jsonl(.gz) or parquet file")
    _draft_options(init, target_required=True)
    init.add_argument("-o", "--output", type=Path, help="where to write it (default: stdout)")
    publish = commands.add_parser("publish-code", help="upload Glue/training code (real AWS)")
    publish.add_argument("--stack-name", required=True)
    return parser


def _draft_options(command: argparse.ArgumentParser, *, target_required: bool) -> None:
    note = "" if target_required else " (drafting; default: the last column)"
    command.add_argument("--target", required=target_required, help=f"the column to predict{note}")
    command.add_argument("--task", choices=["regression", "classification"])
    command.add_argument("--name", help="the dataset name (default: from the file name)")


def _registry_options(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """approve/reject/pin/unpin/rollback: the local cloud by default, or a real AWS account."""
    command.add_argument(
        "--aws",
        action="store_true",
        help="act on AWS with the default credentials and region instead of the local cloud",
    )
    command.add_argument("--stage", help="with --aws: the stack's Stage (default: $STAGE or dev)")
    command.add_argument(
        "--dataset",
        help="the dataset (default: the local stack's DatasetName; with --aws: $DATASET or "
        "used_cars)",
    )
    return command


def _parameter_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter override, like sam deploy --parameter-overrides (repeatable)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "status": _status,
        "cost": _cost,
        "redrive": _redrive,
        "invoke": _invoke,
        "approve": _model_command,
        "reject": _model_command,
        "pin": _model_command,
        "unpin": _model_command,
        "rollback": _model_command,
        "predict": _model_command,
        "publish-code": _publish,
        "contract": _contract_init,
    }
    try:
        if args.command == "local":
            return _up(args) if args.local_command == "up" else _run(args)
        return handlers[args.command](args)
    except TemplateError as exc:
        _echo(f"mlops: {exc}")
        return 2


@contextlib.contextmanager
def _interrupt_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM end the command through the normal clean-up path.

    The handler only raises: taking a lock there (an Event's, say) deadlocks when the signal
    lands while the main thread holds that same lock.
    """

    def handle(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _parameters(approval: str | None, overrides: Sequence[str] = ()) -> dict[str, str]:
    # The demo site is ours, on 127.0.0.1: the template's politeness delay only slows it down.
    parameters = {"PolitenessDelaySeconds": "0"}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--parameter {item!r}: expected KEY=VALUE")
        parameters[key] = value
    return parameters | ({"ApprovalPolicy": approval} if approval else {})


def _demo_site(listings: int) -> Any:
    try:
        import demosite
    except ImportError as exc:
        raise SystemExit(f"the demo site is not available: {exc}") from exc
    if not hasattr(demosite, "serve"):
        raise SystemExit("demosite.serve is not available yet")
    return demosite.serve(listings=listings)


# ---------------------------------------------------------------------- up
def _up(args: argparse.Namespace) -> int:
    from localcloud.remote import live_state, remove_state, write_state

    if live_state(PROJECT_ROOT):
        _echo("A local cloud is already running (see .localcloud/state.json).")
        return 1
    log_dir = PROJECT_ROOT / ".localcloud" / "logs"
    with contextlib.ExitStack() as stack, _interrupt_on_signals():
        try:
            _echo("Starting the local cloud…")
            cloud = stack.enter_context(
                LocalCloud(
                    PROJECT_ROOT, _parameters(args.approval, args.parameter), log_dir=log_dir
                )
            )
            site = stack.enter_context(_demo_site(args.listings))
            stack.callback(remove_state, PROJECT_ROOT)
            state = {
                "pid": os.getpid(),
                "endpoint_url": cloud.endpoint_url,
                "region": cloud.region,
                "account_id": cloud.account_id,
                "resources": cloud.resources,
                "parameters": cloud.parameters,
                "rules": cloud.rule_queues(),
                "service_endpoints": cloud.service_endpoints,
                "http_api_url": cloud.http_api_url,
                "demo_site_url": site.url,
                "noise_sigma": site.catalogue.noise_sigma,
                "log_dir": str(log_dir),
                "started_at": time.time(),
            }
            write_state(PROJECT_ROOT, state)
            schedules = cloud.start_schedules({"start_url": f"{site.url}listings?page=1"})
            _print_up(cloud, site.url, schedules, log_dir)
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            _echo("\nStopping…")
    _echo("Local cloud stopped.")
    return 0


def _print_up(cloud: LocalCloud, site_url: str, schedules: list[str], log_dir: Path) -> None:
    _echo(f"AWS endpoint: {cloud.endpoint_url}")
    _echo(f"  e.g. aws --endpoint-url {cloud.endpoint_url} s3 ls")
    for logical_id in sorted(cloud.resources):
        if logical_id.endswith("Bucket"):
            _echo(f"  {logical_id:<18} s3://{cloud.resources[logical_id]}")
    _echo(f"Demo site: {site_url}")
    _echo(f"Web app:   {cloud.http_api_url or 'not available yet'}")
    _echo(f"Schedules: {', '.join(schedules) or 'disabled (fire one with: mlops local run)'}")
    for env_var, url in cloud.service_endpoints.items():
        _echo(f"  {env_var}={url}")
    _echo(f"Function logs: {log_dir}")
    _echo("Ctrl-C to stop.")


# ---------------------------------------------------------------------- run
def _run(args: argparse.Namespace) -> int:
    from localcloud.ledger_view import LedgerView
    from localcloud.pipeline import (
        follow,
        render,
        sample_prediction,
        start_demo_run,
        summarise,
        upload_dataset,
    )
    from localcloud.remote import RemoteCloud, live_state

    if args.contract and not args.data:
        _echo("--contract goes with --data")
        return 2
    if args.data and not args.data.is_file():
        _echo(f"mlops local run: no such data file: {args.data}")
        return 2
    if args.data and not args.contract:
        args.contract = _draft_for_run(args)
        if args.contract is None:
            return 2
    if args.contract:
        from mlops.contract import Contract, ContractError

        # A broken contract would quarantine the whole upload; say so before starting a cloud.
        try:
            Contract.from_file(args.contract)
        except (OSError, ContractError) as exc:
            _echo(f"mlops local run: {exc}")
            return 2
    echo = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else _echo
    with contextlib.ExitStack() as stack, _interrupt_on_signals():
        try:
            state = live_state(PROJECT_ROOT)
            noise_sigma: float | None = None
            if state:
                target: Any = RemoteCloud(state)
                echo(f"Using the running local cloud at {target.endpoint_url}")
                wanted = args.approval
                if wanted and target.parameters.get("ApprovalPolicy") != wanted:
                    echo(f"note: the running cloud's ApprovalPolicy is not {wanted}")
                site_url = state.get("demo_site_url")
                if args.listings:
                    echo("note: --listings is ignored, the running demo site keeps its catalogue")
                noise_sigma = state.get("noise_sigma")
            else:
                echo("Starting a local cloud…")
                target = stack.enter_context(
                    LocalCloud(
                        PROJECT_ROOT,
                        _parameters(args.approval, args.parameter),
                        console=echo,
                        log_dir=PROJECT_ROOT / ".localcloud" / "logs",
                    )
                )
                site_url = None
            view = LedgerView(target.client("dynamodb"), target.resources["RunLedgerTable"])
            before = view.keys()
            run_id = None
            served_dataset = target.parameters.get("DatasetName", "used_cars")
            dataset = served_dataset
            if args.data:
                dataset, run_id = upload_dataset(target, args.data, args.contract)
                echo(f"Uploaded {args.data.name} as dataset {dataset}: run {run_id}")
            else:
                if site_url is None:
                    site = stack.enter_context(_demo_site(args.listings or DEMO_LISTINGS))
                    site_url, noise_sigma = site.url, site.catalogue.noise_sigma
                echo(f"Scraping the demo site {site_url}")
                start_demo_run(target, site_url)
            outcome = follow(
                target, view, since=before, run_id=run_id, timeout=args.timeout, echo=echo
            )
            prediction = None
            deployed = any(s.stage == "deploy" for s in outcome.stages)
            # The web app serves the template's dataset; a user dataset has its own endpoint.
            if outcome.ok and deployed and dataset == served_dataset:
                prediction = sample_prediction(target)
            web_page = None
            if target.http_api_url and dataset == served_dataset:
                web_page = f"{target.http_api_url.rstrip('/')}/{target.parameters['Stage']}/"
            summary = summarise(
                outcome, noise_sigma=noise_sigma, prediction=prediction, web_page=web_page
            )
            if outcome.run_id not in (None, "unknown"):
                summary["cost"] = _run_cost(target.parameters, outcome.run_id, outcome.stages)
            if not state:
                # Approval and the web page need a cloud that outlives the command.
                gone = " (in a running `mlops local up`; this run's cloud is gone)"
                if summary.get("next"):
                    summary["next"] += gone
                if web_page:
                    summary["web_page_note"] = "served while the run's cloud was up; "
                    summary["web_page_note"] += "`mlops local up` keeps one running"
        except KeyboardInterrupt:
            echo("\nInterrupted.")
            return 130
    default_logs = PROJECT_ROOT / ".localcloud" / "logs"
    summary["logs"] = str((state or {}).get("log_dir", default_logs))
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        _echo(render(summary))
        if not outcome.ok:
            _echo(f"  function logs: {summary['logs']}")
    return outcome.exit_code


# ---------------------------------------------------------------------- contract
def _draft(args: argparse.Namespace, target: str | None) -> Any:
    from mlops.contract_draft import DraftError, draft_file
    from mlops.validation.readers import UnreadableObject

    try:
        return draft_file(args.data, target=target, task=args.task, name=args.name)
    except (OSError, DraftError, UnreadableObject) as exc:
        _echo(f"mlops: cannot draft a contract from {args.data}: {exc}")
        return None


def _warn(draft: Any) -> None:
    for warning in draft.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)


def _contract_init(args: argparse.Namespace) -> int:
    draft = _draft(args, args.target)
    if draft is None:
        return 2
    _warn(draft)
    if args.output is None:
        print(draft.text, end="")
        return 0
    args.output.write_text(draft.text, encoding="utf-8")
    _echo(
        f"Wrote the contract of {draft.contract.name} ({draft.rows:,} rows read) to {args.output}"
    )
    return 0


def _draft_for_run(args: argparse.Namespace) -> Path | None:
    """A contract for ``--data`` without ``--contract``: one drafted earlier, else a new draft."""
    from mlops.contract_draft import dataset_name

    name = args.name or dataset_name(args.data)
    path = args.data.with_name(f"{name}.contract.yaml")
    target = args.target
    if path.is_file():
        from mlops.contract import Contract, ContractError

        try:
            earlier = Contract.from_file(path)
        except ContractError as exc:
            _echo(f"mlops local run: {exc} (fix it, or delete it to draft again)")
            return None
        if args.target in (None, earlier.target) and args.task in (None, earlier.task):
            _echo(f"Using the contract drafted earlier: {path} (delete it to draft again)")
            return path
        _echo(
            f"The contract drafted earlier at {path} predicts {earlier.target} "
            f"({earlier.task}): drafting it again for {args.target or earlier.target}"
        )
        target = target or earlier.target
    draft = _draft(args, target)
    if draft is None:
        return None
    if target is None:
        _echo(f"No --target given: predicting the last column, {draft.contract.target}")
    _warn(draft)
    try:
        path.write_text(draft.text, encoding="utf-8")
    except OSError:
        path = Path.cwd() / path.name  # a read-only data folder
        path.write_text(draft.text, encoding="utf-8")
    _echo(f"Drafted a contract for {args.data.name}: {path} (review it; it is used as written)")
    return path


# ---------------------------------------------------------------------- status
def _status(args: argparse.Namespace) -> int:
    from localcloud.ledger_view import LedgerView
    from localcloud.remote import RemoteCloud, live_state

    state = live_state(PROJECT_ROOT)
    if not state:
        _echo("There is no local cloud running (start one with: mlops local up).")
        return _EXIT_NO_CLOUD
    cloud = RemoteCloud(state)
    view = LedgerView(cloud.client("dynamodb"), cloud.resources["RunLedgerTable"])
    run_id = args.run_id or view.latest_run()
    if not run_id:
        _echo("The ledger is empty: no run yet.")
        return 0
    cost = _run_cost(cloud.parameters, run_id, view.run(run_id))
    print(status_text(view, run_id, _dead_letters(cloud), cost_line=cost.get("line")))
    return 0


def _run_cost(parameters: dict[str, str], run_id: str, stages: Sequence[Any]) -> dict[str, Any]:
    """A run's estimated AWS cost for its summary; never what makes the command fail."""
    from localcloud import cost_report

    try:
        settings = cost_report.load_settings(PROJECT_ROOT, parameters)
        line, cost = cost_report.run_cost_line(run_id, [s.as_dict() for s in stages], settings)
    except Exception as exc:  # a price missing from the table, a template that won't load
        return {"line": f"  cost on AWS: not estimated ({type(exc).__name__}: {exc})"}
    return cost | {"line": line}


def _dead_letters(cloud: Any) -> list[Any]:
    """Messages in the stack's DLQs, left where they are."""
    from localcloud import dead_letters

    sqs = cloud.client("sqs")
    try:
        queues = dead_letters.dead_letter_queues(sqs, cloud.resources)
        return dead_letters.read(sqs, queues, glue=cloud.client("glue"))
    except Exception as exc:  # the timeline is still worth showing
        _echo(f"(dead-letter queues not read: {type(exc).__name__}: {exc})")
        return []


def status_text(
    view: Any,
    run_id: str,
    dead_letters: Sequence[Any] = (),
    now: Any = None,
    *,
    cost_line: str | None = None,
) -> str:
    """A run's timeline (with each failed object's reason), its estimated AWS cost, its
    dead-lettered events, the runs waiting for a preparation slot, and dead letters that could
    not be tied to a run."""
    items = view.run(run_id)
    lines = [f"Run {run_id}"]
    for item in items:
        lines.append(item.line(now))
        for key, outcome, reason in item.failed_objects():
            why = reason.strip().splitlines()[0] if reason.strip() else ""
            lines.append(f"      {outcome}: {key}  {why}".rstrip())
    if not items:
        lines.append("  (no stages recorded)")
    elif cost_line:
        lines.append(cost_line)
    mine = [letter for letter in dead_letters if letter.run_id == run_id]
    if mine:
        lines.append(
            f"Dead-lettered events of this run: {len(mine)} (replay: mlops redrive --run {run_id})"
        )
        lines += [letter.line() for letter in mine]
    queued = view.queued()
    if queued:
        lines.append("Waiting for a free preparation slot (oldest first):")
        lines += [item.line(now) for item in queued]
    if run_id != "unknown":
        orphans = [i.line(now) for i in view.run("unknown") if i.is_dlq]
        orphans += [letter.line() for letter in dead_letters if letter.run_id == "unknown"]
        if orphans:
            lines.append("Dead-lettered events without a run id:")
            lines += orphans
    return "\n".join(lines)


# ---------------------------------------------------------------------- cost
def _cost(args: argparse.Namespace) -> int:
    from localcloud import cost_report
    from mlops import costs

    parameters: dict[str, str] | None = None
    if args.summary:
        try:
            runs = cost_report.runs_from_summary(json.loads(args.summary.read_text()))
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            _echo(f"mlops cost: cannot read a run summary from {args.summary}: {exc}")
            return _EXIT_USAGE
    else:
        from localcloud.ledger_view import LedgerView
        from localcloud.remote import RemoteCloud, live_state

        state = live_state(PROJECT_ROOT)
        if not state:
            _echo(
                "There is no local cloud running (start one with: mlops local up), or price a "
                "saved run: mlops local run --json > run.json; mlops cost --summary run.json"
            )
            return _EXIT_NO_CLOUD
        cloud = RemoteCloud(state)
        view = LedgerView(cloud.client("dynamodb"), cloud.resources["RunLedgerTable"])
        runs = cost_report.runs_from_view(view)
        parameters = cloud.parameters
    if args.run_id:
        if args.run_id not in runs:
            _echo(f"mlops cost: no run {args.run_id} recorded")
            return _EXIT_USAGE
        runs = {args.run_id: runs[args.run_id]}
    if args.stage_name:
        settings = cost_report.load_settings(PROJECT_ROOT, config_env=args.stage_name)
    else:
        settings = cost_report.load_settings(PROJECT_ROOT, parameters)
    given = {"requests_per_day": args.requests_per_day}
    assumptions = costs.Assumptions(**{k: v for k, v in given.items() if v is not None})
    try:
        data = cost_report.report(runs, settings, assumptions, runs_per_month=args.runs_per_month)
    except costs.UnknownPrice as exc:
        _echo(f"mlops cost: {exc}")
        return 1
    print(json.dumps(data) if args.json else cost_report.render(data))
    return 0


# ---------------------------------------------------------------------- redrive
def _redrive(args: argparse.Namespace) -> int:
    from localcloud import dead_letters

    if args.stack_name:
        import boto3

        clients = {name: boto3.client(name) for name in ("sqs", "lambda", "glue")}
        try:
            resources = dead_letters.stack_resources(
                boto3.client("cloudformation"), args.stack_name
            )
        except Exception as exc:  # credentials, a missing stack: say which
            _echo(f"mlops redrive: {type(exc).__name__}: {exc}")
            return 1
    else:
        from localcloud.remote import RemoteCloud, live_state

        state = live_state(PROJECT_ROOT)
        if not state:
            _echo("There is no local cloud running (start one with: mlops local up).")
            return _EXIT_NO_CLOUD
        target = RemoteCloud(state)
        clients = {name: target.client(name) for name in ("sqs", "lambda", "glue")}
        resources = target.resources
    try:
        queues = dead_letters.dead_letter_queues(clients["sqs"], resources)
        done = dead_letters.redrive(
            clients["sqs"],
            clients["lambda"],
            queues,
            run_id=args.run_id,
            queue=args.queue,
            dry_run=args.dry_run,
            glue=clients["glue"],
            echo=_echo,
        )
    except dead_letters.UnknownQueue as exc:
        _echo(f"mlops redrive: {exc}")
        return _EXIT_USAGE
    if not done:
        _echo("No dead-lettered events" + (f" of run {args.run_id}" if args.run_id else "") + ".")
    return 1 if any(d.action == "failed" for d in done) else 0


# ---------------------------------------------------------------------- invoke
def _invoke(args: argparse.Namespace) -> int:
    event = json.loads(args.event_file.read_text())
    log_dir = PROJECT_ROOT / ".localcloud" / "logs"
    with contextlib.ExitStack() as stack:
        cloud = stack.enter_context(
            LocalCloud(
                PROJECT_ROOT, _parameters(None), http_api=False, routing=False, log_dir=log_dir
            )
        )
        if args.demo_site and event.get("detail-type") == "Scheduled Event":
            site = stack.enter_context(_demo_site(args.demo_site))
            detail = event.setdefault("detail", {})
            detail.setdefault("start_url", f"{site.url}listings?page=1")
            # The demo site is ours, on 127.0.0.1: no need to be polite to it.
            detail.setdefault("politeness_delay_seconds", 0)
        spec = cloud.function(args.function)
        _echo(f"Invoking {spec.logical_id} ({spec.name}) with {args.event_file}")
        try:
            result = cloud.invoke(spec.logical_id, event)
        except Exception as exc:
            _echo(f"{spec.logical_id} failed: {type(exc).__name__}: {exc}")
            _echo(f"log: {cloud.log_dir / (spec.logical_id + '.log')}")
            _echo(_tail(cloud.log_dir / f"{spec.logical_id}.log"))
            return 1
        print(json.dumps(result, indent=2, default=str))
    return 0


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------- model commands
_EXIT_USAGE = 2
# approve/reject/pin/unpin that would change nothing (already so): not an error, not a success.
_EXIT_UNCHANGED = 4


def _payload(text: str) -> dict[str, Any] | list[Any]:
    """``mlops predict``'s argument: a JSON object or a list of objects; ValueError says why not."""
    try:
        payload = json.loads(text)
    except RecursionError:
        raise ValueError("the payload is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer over Python's digit limit
        raise ValueError(f"the payload is not valid JSON: {exc}") from None
    rows = payload if isinstance(payload, list) else [payload]
    if not rows or not all(isinstance(row, dict) for row in rows):
        raise ValueError("the payload must be a JSON object or a list of objects")
    return payload


def _model_command(args: argparse.Namespace) -> int:
    from localcloud.remote import RemoteCloud, live_state

    if args.command == "predict":
        try:
            argument: Any = _payload(args.payload)
        except ValueError as exc:
            _echo(f'mlops predict: {exc} (e.g. \'{{"make": "toyota", "year": 2018}}\')')
            return _EXIT_USAGE
    else:
        argument = getattr(args, "version", None)
    if importlib.util.find_spec("localcloud.model_commands") is None:
        _echo(f"mlops {args.command}: not available yet")
        return 1
    from localcloud import model_commands

    on_aws = getattr(args, "aws", False)
    state = None if on_aws else live_state(PROJECT_ROOT)
    if not on_aws and not state:
        _echo("There is no local cloud running (start one with: mlops local up).")
        return _EXIT_NO_CLOUD
    command = getattr(model_commands, args.command, None)
    if command is None:
        _echo(f"mlops {args.command}: not available yet")
        return 1
    options = {"dataset": args.dataset} if getattr(args, "dataset", None) else {}
    try:
        target = model_commands.AwsAccount(args.stage) if on_aws else RemoteCloud(state)
        if argument is None:
            result = command(target, **options)
        else:
            result = command(target, argument, **options)
    except model_commands.Unchanged as exc:
        _echo(f"mlops {args.command}: nothing to change: {exc}")
        return _EXIT_UNCHANGED
    except model_commands.Refused as exc:
        _echo(f"mlops {args.command}: refused: {exc}")
        return _EXIT_USAGE
    except Exception as exc:  # the command's own message says what is wrong
        _echo(f"mlops {args.command} failed: {type(exc).__name__}: {exc}")
        return 1
    if isinstance(result, dict) and "message" in result:
        _echo(f"mlops {args.command}: {result['message']}")
    elif result is not None:
        print(json.dumps(result, indent=2, default=str) if not isinstance(result, str) else result)
    return 0


# ---------------------------------------------------------------------- publish-code
def _publish(args: argparse.Namespace) -> int:
    from localcloud.publish import publish_to_stack

    try:
        written = publish_to_stack(args.stack_name, PROJECT_ROOT)
    except Exception as exc:  # credentials, a missing stack or output: say which
        _echo(f"mlops publish-code: {type(exc).__name__}: {exc}")
        return 1
    for key in written:
        _echo(f"uploaded {key}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
