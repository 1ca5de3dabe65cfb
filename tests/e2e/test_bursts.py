"""Bursts never lose a run; dead letters are alarmed, visible and redrivable (issue 10 item 2).

The probe that found it: five uploads within a second against a preparation job of
MaxConcurrentRuns 3 dead-lettered two runs, silently. Here the same burst ends with every run
prepared and every DLQ empty; and an event that is dead-lettered fires its DLQ's alarm to the
notification topic, shows in `mlops status` under its run, and `mlops redrive` replays it to
success. Runs stop after preparation: no training executor runs here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import localcloud.cli as cli
import localcloud.cloud as cloud_module
from localcloud import dead_letters
from localcloud.cloud import LocalCloud
from localcloud.ledger_view import LedgerView, StageItem
from localcloud.remote import write_state
from tests.e2e.test_prep_localcloud import run_validated, validated_rows

pytestmark = pytest.mark.e2e

FAST = {"PolitenessDelaySeconds": "0"}
GLUE_AND_LAMBDA_API = [
    "localcloud.executors.glue:GlueExecutor",
    "localcloud.executors.lambda_api:LambdaInvokeApi",
]
BURST = 5
ROWS_PER_UPLOAD = 80
FAILING_RUN = "20261203T090000Z-dead1e77"


def view_of(cloud: LocalCloud) -> LedgerView:
    return LedgerView(cloud.client("dynamodb"), cloud.resources["RunLedgerTable"])


def prepare(cloud: LocalCloud, run_id: str) -> StageItem | None:
    return next((i for i in view_of(cloud).run(run_id) if i.stage == "prepare"), None)


def messages_in(cloud: LocalCloud, queue: dead_letters.DeadLetterQueue) -> int:
    attributes = cloud.client("sqs").get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def dlqs(cloud: LocalCloud) -> list[dead_letters.DeadLetterQueue]:
    return dead_letters.dead_letter_queues(cloud.client("sqs"), cloud.resources)


def csv_upload(seed: int) -> bytes:
    from demosite.catalogue import COLUMNS, Catalogue

    rows = Catalogue.generate(listings=ROWS_PER_UPLOAD, seed=seed).listings
    lines = [",".join(COLUMNS)]
    lines += [",".join("" if r[c] is None else str(r[c]) for c in COLUMNS) for r in rows]
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------------- a burst of uploads
@dataclass
class Burst:
    """What the burst left behind (read before its cloud stopped: one cloud per process)."""

    run_ids: list[str]
    uploaded_in: float
    prepare: dict[str, StageItem | None]
    slots: int
    still_queued: list[Any]
    dlq_messages: dict[str, int]
    dead_letters: list[dict[str, Any]]
    failed_invocations: list[dict[str, Any]]


@pytest.fixture(scope="module")
def burst() -> Burst:
    """Five CSVs uploaded as fast as a user can, each its own run; then the cloud settles."""
    from mlops.runs import run_id_for_object

    bodies = [csv_upload(seed) for seed in range(BURST)]
    with LocalCloud(parameters=FAST, executors=GLUE_AND_LAMBDA_API, http_api=False) as cloud:
        s3 = cloud.client("s3")
        run_ids = []
        started = time.monotonic()
        for n, body in enumerate(bodies):
            key = f"used_cars/burst-{n}.csv"
            put = s3.put_object(Bucket=cloud.resources["RawBucket"], Key=key, Body=body)
            run_ids.append(run_id_for_object(key, put["VersionId"]))
        uploaded_in = time.monotonic() - started
        assert cloud.wait_quiescent(timeout=900, cycles=5)
        job = cloud.template.resources["PreparationJob"]["Properties"]
        return Burst(
            run_ids=run_ids,
            uploaded_in=uploaded_in,
            prepare={run_id: prepare(cloud, run_id) for run_id in run_ids},
            slots=int(job["ExecutionProperty"]["MaxConcurrentRuns"]),
            still_queued=view_of(cloud).queued(),
            dlq_messages={q.logical_id: messages_in(cloud, q) for q in dlqs(cloud)},
            dead_letters=list(cloud.dead_letters),
            failed_invocations=[i for i in cloud.invocations if not i.get("ok")],
        )


def test_a_burst_of_uploads_within_a_second_ends_with_every_run_prepared(burst):
    statuses = {run_id: item.status if item else None for run_id, item in burst.prepare.items()}

    assert burst.uploaded_in < 1.0
    assert len(set(burst.run_ids)) == BURST
    assert statuses == dict.fromkeys(burst.run_ids, "SUCCEEDED")


def test_runs_beyond_the_jobs_max_concurrent_runs_waited_in_the_queue(burst):
    waited = [r for r, item in burst.prepare.items() if item and item.detail.get("queued_at")]

    # Validating a small CSV is quicker than a Spark run: runs past the job's slots found
    # Glue full and waited for a drain instead of failing.
    assert burst.slots < BURST
    assert waited, "no run of the burst was queued: Glue never refused a start"
    assert burst.still_queued == []


def test_a_burst_leaves_every_dead_letter_queue_empty(burst):
    assert burst.dead_letters == []
    # Every function's DLQ was read (the template's, whatever functions it gains).
    assert set(burst.dlq_messages) == set(dead_letters.function_queues())
    assert set(burst.dlq_messages.values()) == {0}
    assert burst.failed_invocations == []


# ---------------------------------------------------------------------- a dead-lettered event
@pytest.fixture(scope="module")
def dead_lettered(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalCloud, dict[str, bool], Path]]:
    """A "Run Validated" whose handler fails every attempt (the lake unreachable) lands in
    StartPreparationDLQ; the failure then goes away. The state file lets the CLI find the
    cloud as it finds a running `mlops local up`."""
    failing = {"on": True}
    real_loader = cloud_module.load_handler

    def loader(spec: Any) -> Any:
        handler = real_loader(spec)
        if spec.logical_id != "StartPreparationFunction":
            return handler

        def flaky(event: dict[str, Any], context: Any) -> Any:
            if failing["on"]:
                raise ConnectionError("the ledger is unreachable")
            return handler(event, context)

        return flaky

    root = tmp_path_factory.mktemp("project")
    with (
        pytest.MonkeyPatch.context() as patch,
        LocalCloud(parameters=FAST, executors=GLUE_AND_LAMBDA_API, http_api=False) as cloud,
    ):
        patch.setattr(cloud_module, "load_handler", loader)
        patch.setattr(cli, "PROJECT_ROOT", root)
        write_state(
            root,
            {
                "pid": os.getpid(),
                "endpoint_url": cloud.endpoint_url,
                "resources": cloud.resources,
                "rules": cloud.rule_queues(),
            },
        )
        run_validated(cloud, FAILING_RUN, validated_rows(120))
        assert cloud.wait_quiescent(timeout=120)
        failing["on"] = False
        yield cloud, failing, root


def _queue(cloud: LocalCloud, logical_id: str) -> dead_letters.DeadLetterQueue:
    return next(q for q in dlqs(cloud) if q.logical_id == logical_id)


def test_a_dead_lettered_event_waits_in_its_functions_dlq(dead_lettered):
    cloud, _, _ = dead_lettered

    assert [d["function"] for d in cloud.dead_letters] == ["StartPreparationFunction"]
    assert messages_in(cloud, _queue(cloud, "StartPreparationDLQ")) == 1


def test_status_shows_the_dead_lettered_event_under_its_run(dead_lettered, capsys):
    cloud, _, _ = dead_lettered
    capsys.readouterr()

    assert cli.main(["status", FAILING_RUN]) == 0

    shown = capsys.readouterr().out
    assert f"Dead-lettered events of this run: 1 (replay: mlops redrive --run {FAILING_RUN})" in (
        shown
    )
    assert "StartPreparationDLQ" in shown
    assert "ConnectionError: the ledger is unreachable" in shown
    # Looking does not take the message out of the queue.
    assert messages_in(cloud, _queue(cloud, "StartPreparationDLQ")) == 1


def _alarm_watching(cloud: LocalCloud, queue_name: str) -> Any:
    alarms = [
        p
        for p in cloud.provisioned.values()
        if p.type == "AWS::CloudWatch::Alarm"
        and p.properties.get("Namespace") == "AWS/SQS"
        and {"Name": "QueueName", "Value": queue_name} in p.properties.get("Dimensions", [])
    ]
    assert len(alarms) == 1, f"{queue_name} has {len(alarms)} alarms"
    return alarms[0]


def _breaches(cloud: LocalCloud, alarm: Any) -> bool:
    """The alarm's condition on the queue's current value (Maximum over one period)."""
    props = alarm.properties
    assert props["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    queue = next(q for q in dlqs(cloud) if q.name == props["Dimensions"][0]["Value"])
    visible = cloud.client("sqs").get_queue_attributes(
        QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    return int(visible) > float(props["Threshold"])


def test_every_dlq_has_an_alarm_that_notifies_the_topic(dead_lettered):
    cloud, _, _ = dead_lettered
    topic = cloud.provisioned["NotificationTopic"].attributes["Arn"]

    for queue in dlqs(cloud):
        alarm = _alarm_watching(cloud, queue.name)
        assert alarm.properties["AlarmActions"] == [topic], queue.logical_id


def test_the_dead_letter_fires_its_dlqs_alarm_which_reaches_the_notification_topic(
    dead_lettered,
):
    cloud, _, _ = dead_lettered
    sqs, sns = cloud.client("sqs"), cloud.client("sns")
    topic = cloud.provisioned["NotificationTopic"].attributes["Arn"]
    inbox = sqs.create_queue(QueueName="operator-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn["Attributes"]["QueueArn"])
    alarm = _alarm_watching(cloud, _queue(cloud, "StartPreparationDLQ").name)
    quiet = [
        _alarm_watching(cloud, q.name) for q in dlqs(cloud) if q.logical_id != "StartPreparationDLQ"
    ]
    assert _breaches(cloud, alarm)
    assert not any(_breaches(cloud, other) for other in quiet)

    notified = cloud.alarm(alarm.name, "1 message visible in the DLQ")

    assert notified == [topic]
    assert cloud.undelivered == []
    received = sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=2)["Messages"]
    assert json.loads(received[0]["Body"])["Subject"] == f'ALARM: "{alarm.name}" in us-east-1'


def test_lambda_invoke_runs_a_template_function_synchronously_with_its_result(dead_lettered):
    cloud, _, _ = dead_lettered
    sweep = json.loads((cloud.project_root / "events" / "preparation_queue_sweep.json").read_text())

    answer = cloud.client("lambda").invoke(
        FunctionName=cloud.resources["StartPreparationFunction"], Payload=json.dumps(sweep)
    )

    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read())["trigger"] == "Scheduled Event"


def test_lambda_invoke_of_a_function_the_stack_lacks_is_resource_not_found(dead_lettered):
    cloud, _, _ = dead_lettered

    with pytest.raises(ClientError) as refused:
        cloud.client("lambda").invoke(FunctionName="no-such-function", InvocationType="Event")

    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_redrive_replays_the_dead_lettered_event_to_success(dead_lettered, capsys):
    cloud, _, _ = dead_lettered
    assert prepare(cloud, FAILING_RUN) is None
    capsys.readouterr()

    assert cli.main(["redrive", "--run", FAILING_RUN]) == 0

    said = capsys.readouterr().out
    assert cloud.wait_quiescent(timeout=300)
    assert "redriven: StartPreparationDLQ" in said and f"(run {FAILING_RUN})" in said
    assert prepare(cloud, FAILING_RUN).status == "SUCCEEDED"
    assert messages_in(cloud, _queue(cloud, "StartPreparationDLQ")) == 0
    assert [d["function"] for d in cloud.dead_letters] == ["StartPreparationFunction"]


def test_a_user_redriving_an_empty_queue_is_told_so(dead_lettered, capsys):
    capsys.readouterr()

    assert cli.main(["redrive", "--queue", "DeployDLQ", "--dry-run"]) == 0

    assert "No dead-lettered events." in capsys.readouterr().out
