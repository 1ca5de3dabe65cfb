"""The serving rule: the newest Approved version serves, or the pinned one while it is Approved.

The rule itself (``mlops.serving.choose``), the deploy function converging an endpoint to it
in moto, and the commands people use (``mlops approve/reject/pin/unpin/rollback``).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from localcloud import cli, model_commands
from mlops import ledger
from mlops.deployment import OUT_OF_SERVICE, EndpointBusy
from mlops.serving import PIN_TAG, Registry, choose
from tests.unit.test_deploy_handler import (
    ENDPOINT,
    GROUP,
    RUNS,
    cloud,  # noqa: F401 - the fixture
    deploy,
    notifications,
    package_event,
    pin,
    register,
    set_endpoint_status,
)

A, R, P = "Approved", "Rejected", "PendingManualApproval"


def served(stack: dict[str, Any]) -> str | None:
    """The config the endpoint serves, None without an endpoint."""
    if not stack["sagemaker"].list_endpoints()["Endpoints"]:
        return None
    return stack["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]


def set_status(stack: dict[str, Any], arn: str, status: str) -> None:
    stack["sagemaker"].update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)


def changed(event: Any, arn: str, version: int, status: str) -> dict[str, Any]:
    """The registry's state-change event for ``version`` now at ``status``."""
    sample = package_event(event, "model_package_approved", version, arn)
    sample["detail"]["ModelApprovalStatus"] = status
    return sample


def pin_event(event: Any, version: int | None) -> dict[str, Any]:
    sample = event("serving_pin_changed")
    sample["detail"]["PinnedVersion"] = version
    return sample


# ------------------------------------------------------------------ the rule


def test_the_newest_approved_version_serves() -> None:
    registry = Registry(GROUP, statuses={1: A, 2: A, 3: P, 4: R})
    assert (choose(registry).version, choose(registry).why) == (2, "newest Approved")


def test_a_pinned_approved_version_serves_instead_of_newer_ones() -> None:
    registry = Registry(GROUP, statuses={1: A, 2: A, 3: A}, pinned=1)
    assert choose(registry).describe() == "v1 (pinned)"


def test_a_pin_on_a_version_that_is_not_approved_is_ignored_and_said_so() -> None:
    choice = choose(Registry(GROUP, statuses={1: A, 2: R}, pinned=2))
    assert choice.version == 1
    assert choice.describe() == (
        "v1 (newest Approved); the pin on v2 is ignored while it is not Approved"
    )


def test_with_no_approved_version_nothing_serves() -> None:
    assert choose(Registry(GROUP, statuses={1: R, 2: P})).version is None


# ------------------------------------------------------------------ the deploy function


@pytest.fixture
def two_approved(cloud, event, lambda_context) -> tuple[str, str]:  # noqa: F811
    """v1 and v2 approved, each approval delivered; v2 serves."""
    first = register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    second = register(cloud, 2)
    deploy(package_event(event, "model_package_approved", 2, second), lambda_context)
    assert served(cloud) == "mlops-used-cars-dev-v2"
    return first, second


def test_rejecting_the_serving_version_serves_the_next_newest_approved(
    cloud,  # noqa: F811
    event,
    lambda_context,
    two_approved,
) -> None:
    _, second = two_approved
    # when v2 is rejected
    set_status(cloud, second, R)
    result = deploy(changed(event, second, 2, R), lambda_context)
    # then v1 serves again
    assert result["outcome"] == "Deploying" and result["serving"] == "v1 (newest Approved)"
    assert served(cloud) == "mlops-used-cars-dev-v1"


def test_rejecting_the_last_approved_version_takes_the_endpoint_out_of_service(
    cloud,  # noqa: F811
    event,
    lambda_context,
) -> None:
    arn = register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    # when the only Approved version is rejected
    set_status(cloud, arn, R)
    result = deploy(changed(event, arn, 1, R), lambda_context)
    # then the endpoint is deleted, people are told, and the ledger says why
    assert result["outcome"] == "TakenOutOfService"
    assert cloud["sagemaker"].list_endpoints()["Endpoints"] == []
    [message] = notifications(cloud)
    assert "no Approved version left in mlops-used-cars-dev" in message
    [item] = [s for s in ledger.stages(RUNS[1]) if s["stage"] == OUT_OF_SERVICE]
    assert (
        item["status"] == "SUCCEEDED" and "endpoint mlops-used-cars-dev deleted" in item["reason"]
    )
    assert item["model_package_version"] == 1


def test_a_redelivered_rejection_of_the_last_version_is_harmless(
    cloud,  # noqa: F811
    event,
    lambda_context,
) -> None:
    arn = register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    set_status(cloud, arn, R)
    deploy(changed(event, arn, 1, R), lambda_context)
    # when the same event is delivered twice more
    again = [deploy(changed(event, arn, 1, R), lambda_context) for _ in range(2)]
    # then nothing more happens and nobody is told twice
    assert [r["outcome"] for r in again] == ["Unchanged", "Unchanged"]
    assert len(notifications(cloud)) == 1


def test_a_redelivered_rejection_of_the_serving_version_is_harmless(
    cloud,  # noqa: F811
    event,
    lambda_context,
    two_approved,
) -> None:
    _, second = two_approved
    set_status(cloud, second, R)
    deploy(changed(event, second, 2, R), lambda_context)
    result = deploy(changed(event, second, 2, R), lambda_context)
    assert result["outcome"] == "AlreadyServing"
    assert served(cloud) == "mlops-used-cars-dev-v1"


def test_pinning_serves_the_pinned_version_and_unpinning_the_newest(
    cloud,  # noqa: F811
    event,
    lambda_context,
    two_approved,
) -> None:
    pin(cloud, 1)
    assert deploy(pin_event(event, 1), lambda_context)["serving"] == "v1 (pinned)"
    assert served(cloud) == "mlops-used-cars-dev-v1"
    # when the pin is cleared
    pin(cloud, None)
    result = deploy(pin_event(event, None), lambda_context)
    # then the newest Approved version serves again
    assert result["serving"] == "v2 (newest Approved)"
    assert served(cloud) == "mlops-used-cars-dev-v2"


def test_rejecting_the_pinned_version_serves_the_newest_approved(
    cloud,  # noqa: F811
    event,
    lambda_context,
    two_approved,
) -> None:
    first, _ = two_approved
    pin(cloud, 1)
    deploy(pin_event(event, 1), lambda_context)
    set_status(cloud, first, R)
    result = deploy(changed(event, first, 1, R), lambda_context)
    assert result["serving"].startswith("v2 (newest Approved); the pin on v1 is ignored")
    assert served(cloud) == "mlops-used-cars-dev-v2"


def test_the_registry_decides_not_the_status_an_event_carries(
    cloud,  # noqa: F811
    event,
    lambda_context,
) -> None:
    # given v1 serving and v2 approved then rejected before its approval event arrives
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    second = register(cloud, 2, status=R)
    # when the late "Approved" event for v2 arrives
    result = deploy(changed(event, second, 2, A), lambda_context)
    # then v1 keeps serving
    assert result["outcome"] == "AlreadyServing" and result["model_package_version"] == 1
    assert served(cloud) == "mlops-used-cars-dev-v1"


def test_a_new_pending_version_changes_nothing_and_writes_nothing(
    cloud,  # noqa: F811
    event,
    lambda_context,
) -> None:
    register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    deploy(event("endpoint_in_service"), lambda_context)
    before = ledger.stages(RUNS[1])
    second = register(cloud, 2, status=P)
    result = deploy(changed(event, second, 2, P), lambda_context)
    assert (result["outcome"], result["reason"]) == ("AlreadyServing", "nothing to change")
    assert ledger.stages(RUNS[1]) == before and ledger.stages(RUNS[2]) == []
    assert notifications(cloud) == []


def test_a_change_while_the_endpoint_updates_raises_for_a_retry(
    cloud,  # noqa: F811
    event,
    lambda_context,
    two_approved,
) -> None:
    _, second = two_approved
    set_endpoint_status("Updating")
    set_status(cloud, second, R)
    with pytest.raises(EndpointBusy):
        deploy(changed(event, second, 2, R), lambda_context)


def test_taking_out_of_service_while_the_endpoint_updates_raises_for_a_retry(
    cloud,  # noqa: F811
    event,
    lambda_context,
) -> None:
    arn = register(cloud, 1)
    deploy(event("model_package_approved"), lambda_context)
    set_endpoint_status("Creating")
    set_status(cloud, arn, R)
    with pytest.raises(EndpointBusy):
        deploy(changed(event, arn, 1, R), lambda_context)
    assert cloud["sagemaker"].list_endpoints()["Endpoints"] != []


def test_a_rolled_back_version_is_retried_only_by_an_event_about_it(
    cloud,  # noqa: F811
    event,
    lambda_context,
    two_approved,
) -> None:
    # given v2's update rolled back: the endpoint is in service on v1 while meant for v2
    cloud["sagemaker"].update_endpoint(
        EndpointName=ENDPOINT, EndpointConfigName="mlops-used-cars-dev-v1"
    )
    # when an unrelated version is registered
    third = cloud["sagemaker"].create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=P,
        InferenceSpecification={
            "Containers": [{"Image": "image", "ModelDataUrl": "s3://b/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    result = deploy(changed(event, third, 3, P), lambda_context)
    # then v2 is not deployed again behind people's backs
    assert result["outcome"] == "Unchanged" and "rolled back" in result["reason"]
    assert served(cloud) == "mlops-used-cars-dev-v1"
    # but pinning v2 (a person asking for it) tries it once more
    pin(cloud, 2)
    assert deploy(pin_event(event, 2), lambda_context)["outcome"] == "Deploying"
    assert served(cloud) == "mlops-used-cars-dev-v2"


# ------------------------------------------------------------------ the commands


class Target:
    """What the model commands need of a cloud: clients, the stack's parameters."""

    parameters = {"Stage": "dev", "DatasetName": "used_cars"}

    def client(self, service: str) -> Any:
        return boto3.client(service)


@pytest.fixture
def pin_events(cloud) -> Any:  # noqa: F811
    """The "Serving Pin Changed" events put on the default bus, read through a queue."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName="pins")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    events.put_rule(
        Name="pins",
        EventPattern=json.dumps(
            {"source": ["mlops.serving"], "detail-type": ["Serving Pin Changed"]}
        ),
    )
    events.put_targets(Rule="pins", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])

    def received() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]

    return received


def test_approving_an_already_approved_version_says_what_serves_and_how_to_serve_it(
    cloud,  # noqa: F811
    two_approved,
) -> None:
    with pytest.raises(model_commands.Unchanged) as unchanged:
        model_commands.approve(Target(), 1)
    assert str(unchanged.value) == (
        "v1 is already Approved; v2 (newest Approved) serves. To serve v1: mlops pin 1"
    )


def test_rejecting_an_already_rejected_version_changes_nothing(cloud) -> None:  # noqa: F811
    register(cloud, 1, status=R)
    with pytest.raises(model_commands.Unchanged, match="v1 is already Rejected"):
        model_commands.reject(Target(), 1)


def test_rejecting_says_what_will_serve_and_what_serves_until_then(
    cloud,  # noqa: F811
    two_approved,
) -> None:
    result = model_commands.reject(Target(), 2)
    assert result["previous_status"] == A and result["serving"] == "v1 (newest Approved)"
    assert result["message"] == (
        "v2: Approved -> Rejected. will serve: v1 (newest Approved); serving now: v2 "
        "(the deploy function converges it)"
    )


def test_pinning_a_version_that_is_not_approved_is_refused(cloud) -> None:  # noqa: F811
    register(cloud, 1)
    register(cloud, 2, status=P)
    with pytest.raises(model_commands.Refused, match="v2 is PendingManualApproval"):
        model_commands.pin(Target(), 2)
    group = cloud["sagemaker"].describe_model_package_group(ModelPackageGroupName=GROUP)
    tags = cloud["sagemaker"].list_tags(ResourceArn=group["ModelPackageGroupArn"])["Tags"]
    assert tags == []


def test_pin_tags_the_group_and_puts_the_event_the_deploy_function_acts_on(
    cloud,  # noqa: F811
    two_approved,
    pin_events,
    lambda_context,
) -> None:
    result = model_commands.pin(Target(), 1)
    assert result["serving"] == "v1 (pinned)"
    group = cloud["sagemaker"].describe_model_package_group(ModelPackageGroupName=GROUP)
    tags = cloud["sagemaker"].list_tags(ResourceArn=group["ModelPackageGroupArn"])["Tags"]
    assert {"Key": PIN_TAG, "Value": "1"} in tags
    [delivered] = pin_events()
    assert delivered["detail"] == {"ModelPackageGroupName": GROUP, "PinnedVersion": 1}
    # the deploy function, given that event, serves v1 (moto's SQS target drops `account`)
    deploy(delivered | {"account": "123456789012"}, lambda_context)
    assert served(cloud) == "mlops-used-cars-dev-v1"


def test_unpin_clears_the_pin_and_without_one_changes_nothing(
    cloud,  # noqa: F811
    two_approved,
    pin_events,
) -> None:
    model_commands.pin(Target(), 1)
    assert model_commands.unpin(Target())["serving"] == "v2 (newest Approved)"
    assert [e["detail"]["PinnedVersion"] for e in pin_events()] == [1, None]
    with pytest.raises(model_commands.Unchanged, match="nothing is pinned; v2"):
        model_commands.unpin(Target())


def test_rollback_pins_the_approved_version_before_the_one_chosen(
    cloud,  # noqa: F811
    two_approved,
) -> None:
    assert model_commands.rollback(Target())["pinned"] == 1
    with pytest.raises(model_commands.Refused, match="no older version is Approved"):
        model_commands.rollback(Target())


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlops` finds a running local cloud, which is this test's moto account."""
    monkeypatch.setattr("localcloud.remote.live_state", lambda root: {"pid": 1})
    monkeypatch.setattr("localcloud.remote.RemoteCloud", lambda state: Target())


def test_mlops_approve_of_an_approved_version_exits_4_with_the_hint(
    cloud,  # noqa: F811
    two_approved,
    running,
    capsys,
) -> None:
    code = cli.main(["approve", "1"])
    assert code == 4
    assert "v1 is already Approved; v2 (newest Approved) serves" in capsys.readouterr().out


def test_mlops_pin_of_a_rejected_version_exits_2(cloud, running, capsys) -> None:  # noqa: F811
    register(cloud, 1, status=R)
    assert cli.main(["pin", "1"]) == 2
    assert "refused: v1 is Rejected" in capsys.readouterr().out


def test_mlops_reject_prints_what_will_serve(cloud, two_approved, running, capsys) -> None:  # noqa: F811
    assert cli.main(["reject", "2"]) == 0
    assert "will serve: v1 (newest Approved)" in capsys.readouterr().out


def test_mlops_pin_with_aws_acts_on_the_account_without_a_local_cloud(
    cloud,  # noqa: F811
    two_approved,
    monkeypatch,
    capsys,
) -> None:
    # given no local cloud (moto stands in for the AWS account of the default credentials)
    monkeypatch.setattr("localcloud.remote.live_state", lambda root: None)
    code = cli.main(["pin", "1", "--aws", "--stage", "dev"])
    assert code == 0
    assert "will serve: v1 (pinned)" in capsys.readouterr().out
    group = cloud["sagemaker"].describe_model_package_group(ModelPackageGroupName=GROUP)
    tags = cloud["sagemaker"].list_tags(ResourceArn=group["ModelPackageGroupArn"])["Tags"]
    assert {"Key": PIN_TAG, "Value": "1"} in tags
