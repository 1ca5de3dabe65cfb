"""Code publication: what managed compute runs is uploaded where the template points it."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import boto3
import pytest

from localcloud.publish import publish_code

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "artifacts"


@pytest.fixture
def s3(aws: None) -> object:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def body(s3: object, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # type: ignore[attr-defined]


def test_every_glue_script_and_the_shared_package_are_published(s3: object) -> None:
    written = publish_code(s3, BUCKET, ROOT)

    for name in ("prepare.py", "validate.py"):
        assert f"code/glue/{name}" in written
        assert body(s3, f"code/glue/{name}") == (ROOT / "glue" / name).read_bytes()
    names = zipfile.ZipFile(io.BytesIO(body(s3, "code/glue/mlops.zip"))).namelist()
    assert "mlops/__init__.py" in names and "mlops/ledger.py" in names
    assert not any("__pycache__" in name for name in names)


def test_the_training_sourcedir_holds_training_and_only_the_ml_subpackage(s3: object) -> None:
    publish_code(s3, BUCKET, ROOT)

    with tarfile.open(fileobj=io.BytesIO(body(s3, "code/training/sourcedir.tar.gz"))) as archive:
        names = set(archive.getnames())
    expected_training = {p.name for p in (ROOT / "training").glob("*.py")}
    assert expected_training <= names
    assert "mlops/__init__.py" in names
    assert any(name.startswith("mlops/ml/") for name in names)
    # Only what runs on the SageMaker container's Python (no boto3/Powertools modules).
    assert "mlops/ledger.py" not in names


def test_bundled_contracts_are_published_under_contracts(s3: object) -> None:
    written = publish_code(s3, BUCKET, ROOT)

    bundled = sorted((ROOT / "layers" / "shared" / "mlops" / "contracts").glob("*.yaml"))
    assert bundled
    for contract in bundled:
        assert f"contracts/{contract.name}" in written
        assert body(s3, f"contracts/{contract.name}") == contract.read_bytes()


def test_publishing_to_a_deployed_stack_finds_its_artifacts_bucket_output(aws: None) -> None:
    import json

    from localcloud.publish import publish_to_stack

    template = {
        "Resources": {"Artifacts": {"Type": "AWS::S3::Bucket"}},
        "Outputs": {"ArtifactsBucketName": {"Value": {"Ref": "Artifacts"}}},
    }
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(StackName="serverless-mlops-dev", TemplateBody=json.dumps(template))
    outputs = cloudformation.describe_stacks(StackName="serverless-mlops-dev")["Stacks"][0]
    bucket = outputs["Outputs"][0]["OutputValue"]

    written = publish_to_stack("serverless-mlops-dev", ROOT)

    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=bucket)
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(written)
    assert "code/training/sourcedir.tar.gz" in written
