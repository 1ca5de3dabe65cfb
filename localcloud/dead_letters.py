"""The stack's dead letters: read without consuming them, tied to runs, and redriven.

AWS APIs only (SQS, Lambda, Glue; CloudFormation to find a deployed stack's resources), so the
same code serves the local cloud and a stack deployed on AWS.

Every function's DLQ holds two kinds of message, and both bodies are the original event:
Lambda's, after an asynchronous invocation failed every attempt (attributes ``RequestID``,
``ErrorCode``, ``ErrorMessage``: "Configuring a dead-letter queue", Lambda Developer Guide),
and EventBridge's, when it could not deliver the event to the function at all (attributes
``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``, ``ERROR_MESSAGE``: "Using dead-letter queues to
process undelivered events", EventBridge User Guide). Redriving either is an asynchronous
invocation of that function with the body, as Lambda or EventBridge would have made it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from localcloud.cloud import PROJECT_ROOT, find_run_id

# Long enough for one invocation to be accepted; a message not redriven is made visible again.
_HIDE_SECONDS = 60
_RECEIVE_ROUNDS = 100


class UnknownQueue(LookupError):
    """``--queue`` names no dead-letter queue of the stack."""


@dataclass(frozen=True)
class DeadLetterQueue:
    """A function's dead-letter queue (the template's ``DeadLetterQueue`` of the function)."""

    logical_id: str
    url: str
    function_logical_id: str
    function_name: str

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class DeadLetter:
    """One message in a DLQ: the event, the run it belongs to, and why it was given up on."""

    queue: DeadLetterQueue
    message_id: str
    receipt_handle: str
    event: dict[str, Any]
    run_id: str
    error: str = ""
    rule_arn: str | None = None
    sent_at: str | None = None

    @property
    def detail_type(self) -> str:
        return str(self.event.get("detail-type", "event"))

    def line(self) -> str:
        """One status line: queue, what the event was, why it failed (first line)."""
        why = self.error.strip().splitlines()[0] if self.error.strip() else ""
        via = " (undelivered by EventBridge)" if self.rule_arn else ""
        when = ""
        if self.sent_at and self.sent_at.isdigit():
            moment = datetime.fromtimestamp(int(self.sent_at) / 1000, timezone.utc)
            when = f" at {moment:%Y-%m-%dT%H:%M:%SZ}"
        text = f"  {self.queue.logical_id:<28} {self.detail_type}{via}{when}"
        return f"{text}  {why}".rstrip()


def _target(value: Any) -> str | None:
    """The logical id a ``!GetAtt X.Arn`` names."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return (target[0] if isinstance(target, list) else str(target).split(".")[0]) or None
    return None


def function_queues(template_path: Path | None = None) -> dict[str, str]:
    """{DLQ logical id: function logical id}, from template.yaml's functions."""
    sam = yaml_parse((template_path or PROJECT_ROOT / "template.yaml").read_text())
    out: dict[str, str] = {}
    for logical_id, resource in sam["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        dlq = (resource.get("Properties") or {}).get("DeadLetterQueue") or {}
        queue = _target(dlq.get("TargetArn"))
        if queue:
            out[queue] = logical_id
    return out


def stack_resources(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """{logical id: physical id} of a deployed stack (a queue's is its URL)."""
    out: dict[str, str] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for summary in page["StackResourceSummaries"]:
            out[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
    return out


def dead_letter_queues(
    sqs: Any, resources: Mapping[str, str], template_path: Path | None = None
) -> list[DeadLetterQueue]:
    """The stack's DLQs with the functions they belong to; ``resources`` maps logical ids to
    physical names (the local cloud's) or ids (CloudFormation's: a queue URL)."""
    queues = []
    for queue, function in sorted(function_queues(template_path).items()):
        physical = resources.get(queue)
        if not physical or function not in resources:
            continue
        url = (
            physical
            if physical.startswith("http")
            else sqs.get_queue_url(QueueName=physical)["QueueUrl"]
        )
        queues.append(DeadLetterQueue(queue, url, function, resources[function]))
    return queues


def run_of(event: dict[str, Any], glue: Any = None) -> str:
    """The run an event belongs to: its ``run_id``, a ``run_id=`` key segment, the run an
    uploaded object derives, or a Glue job run's ``--run_id`` argument; else "unknown"."""
    from mlops.runs import run_id_for_object

    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    found = find_run_id(detail) or find_run_id(event)
    if found:
        return found
    obj = detail.get("object") if isinstance(detail.get("object"), dict) else None
    if event.get("source") == "aws.s3" and obj and obj.get("key"):
        version = obj.get("version-id") or obj.get("etag") or ""
        return run_id_for_object(str(obj["key"]), str(version))
    if event.get("detail-type") == "Glue Job State Change" and glue is not None:
        try:
            run = glue.get_job_run(JobName=detail["jobName"], RunId=detail["jobRunId"])
            return str(run["JobRun"].get("Arguments", {}).get("--run_id") or "unknown")
        except Exception:  # a job run Glue no longer knows: the message is still shown
            return "unknown"
    return "unknown"


def _letter(queue: DeadLetterQueue, message: dict[str, Any], glue: Any) -> DeadLetter:
    attributes = {
        name: str(value.get("StringValue", ""))
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    try:
        event = json.loads(message["Body"])
    except ValueError:
        event = {"body": message["Body"]}
    if not isinstance(event, dict):
        event = {"body": event}
    error = attributes.get("ErrorMessage") or attributes.get("ERROR_MESSAGE") or ""
    code = attributes.get("ERROR_CODE")
    return DeadLetter(
        queue=queue,
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        event=event,
        run_id=run_of(event, glue),
        error=f"{code}: {error}" if code and error else error or (code or ""),
        rule_arn=attributes.get("RULE_ARN"),
        sent_at=(message.get("Attributes") or {}).get("SentTimestamp"),
    )


def _receive(sqs: Any, queue: DeadLetterQueue) -> Iterator[dict[str, Any]]:
    """Every message of the queue once, each hidden while it is looked at.

    Received with VisibilityTimeout 0, a queue of more than ten messages would keep answering
    with the same ones; hidden, each receive brings the next. The caller shows each message
    again (``_show_again``) or deletes it, with the latest receipt handle, as SQS requires.
    """
    seen: set[str] = set()
    for _ in range(_RECEIVE_ROUNDS):
        got = sqs.receive_message(
            QueueUrl=queue.url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=_HIDE_SECONDS,
            # Short polling samples a subset of SQS's servers and can come back empty from a
            # queue with messages (SQS Developer Guide, "short and long polling"); a second of
            # long polling asks them all.
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["SentTimestamp"],
        ).get("Messages", [])
        fresh = [m for m in got if m["MessageId"] not in seen]
        if not fresh:
            return
        for message in fresh:
            seen.add(message["MessageId"])
            yield message


def read(sqs: Any, queues: list[DeadLetterQueue], glue: Any = None) -> list[DeadLetter]:
    """Every message in ``queues``, left in place: each is visible again once read."""
    letters = []
    for queue in queues:
        received = [_letter(queue, m, glue) for m in _receive(sqs, queue)]
        for letter in received:
            _show_again(sqs, letter)
        letters += received
    return letters


@dataclass
class Redriven:
    """What redrive did with one message."""

    letter: DeadLetter
    action: str  # "redriven", "would redrive", "failed"
    detail: str = ""

    def line(self) -> str:
        letter = self.letter
        text = (
            f"{self.action}: {letter.queue.logical_id} {letter.message_id} "
            f"{letter.detail_type} (run {letter.run_id}) -> {letter.queue.function_name}"
        )
        return f"{text}  {self.detail}".rstrip()


def redrive(
    sqs: Any,
    lambda_client: Any,
    queues: list[DeadLetterQueue],
    *,
    run_id: str | None = None,
    queue: str | None = None,
    dry_run: bool = False,
    glue: Any = None,
    echo: Callable[[str], None] | None = None,
) -> list[Redriven]:
    """Invoke each dead-lettered event's function asynchronously with the event; delete the
    message only once Lambda accepted the invocation (202). ``run_id`` and ``queue`` (logical
    id or queue name) select messages; ``dry_run`` says what would be done and changes nothing."""
    chosen = [q for q in queues if queue in (None, q.logical_id, q.name)]
    if queue is not None and not chosen:
        known = ", ".join(q.logical_id for q in queues)
        raise UnknownQueue(f"no dead-letter queue {queue!r} (queues: {known})")
    done: list[Redriven] = []
    for dlq in chosen:
        for message in list(_receive(sqs, dlq)):
            letter = _letter(dlq, message, glue)
            if run_id is not None and letter.run_id != run_id:
                _show_again(sqs, letter)
                continue
            done.append(_redrive_one(sqs, lambda_client, letter, dry_run))
            if echo is not None:
                echo(done[-1].line())
    return done


def _redrive_one(sqs: Any, lambda_client: Any, letter: DeadLetter, dry_run: bool) -> Redriven:
    if dry_run:
        _show_again(sqs, letter)
        return Redriven(letter, "would redrive")
    try:
        response = lambda_client.invoke(
            FunctionName=letter.queue.function_name,
            InvocationType="Event",
            Payload=json.dumps(letter.event).encode(),
        )
    except Exception as exc:  # the message stays for a later redrive
        _show_again(sqs, letter)
        return Redriven(letter, "failed", f"{type(exc).__name__}: {exc}; message kept")
    if response.get("StatusCode") != 202:
        _show_again(sqs, letter)
        return Redriven(letter, "failed", f"Lambda answered {response.get('StatusCode')}")
    sqs.delete_message(QueueUrl=letter.queue.url, ReceiptHandle=letter.receipt_handle)
    return Redriven(letter, "redriven", "invocation accepted; message deleted")


def _show_again(sqs: Any, letter: DeadLetter) -> None:
    sqs.change_message_visibility(
        QueueUrl=letter.queue.url, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0
    )
