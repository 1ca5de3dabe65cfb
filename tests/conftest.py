"""Fixtures every test shares: offline AWS credentials, moto, and the sample events in events/."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

# Set before any boto3 client exists: no real credentials, no metadata probe, one region.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_METRICS_NAMESPACE="ServerlessMLOpsTest",
    POWERTOOLS_DEV="false",
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ by file name (with or without .json)."""
    path = EVENTS / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text())


@pytest.fixture
def event() -> Any:
    return load_event


@pytest.fixture
def aws() -> Iterator[None]:
    """A fresh moto account for one test, with the shared clients forgotten before and after."""
    from moto import mock_aws

    from mlops import clients

    clients.reset()
    with mock_aws():
        yield
    clients.reset()


class LambdaContext:
    """The attributes of the Lambda context object that Powertools and our handlers read."""

    function_name = "test-function"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/test-function"
    log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@functools.cache
def _declared_resources() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse((ROOT / "template.yaml").read_text())["Resources"]


@pytest.fixture
def declared_table(aws: None) -> Any:
    """Creates, in moto, a DynamoDB table with the key schema template.yaml declares for it."""

    def create(logical_id: str, name: str) -> str:
        props = _declared_resources()[logical_id]["Properties"]
        boto3.client("dynamodb").create_table(
            TableName=name,
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode=props["BillingMode"],
        )
        return name

    return create


@pytest.fixture(scope="session", autouse=True)
def _lake_matches_ledger_when_a_cloud_stops() -> Iterator[dict[str, bool]]:
    """Every local cloud a test starts is reconciled before it stops (tests/e2e/lake_check.py)."""
    from tests.e2e.lake_check import reconcile_when_clouds_stop

    yield from reconcile_when_clouds_stop()


@pytest.fixture(autouse=True)
def _unless_marked_unreconciled(
    request: pytest.FixtureRequest, _lake_matches_ledger_when_a_cloud_stops: dict[str, bool]
) -> Iterator[None]:
    marker = request.node.get_closest_marker("unreconciled")
    _lake_matches_ledger_when_a_cloud_stops["on"] = marker is None
    yield
    _lake_matches_ledger_when_a_cloud_stops["on"] = True
