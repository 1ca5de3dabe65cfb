"""Publishes the code managed compute runs (Glue scripts, shared package, training source) and
the bundled dataset contracts to the artifacts bucket: at local start-up and after `sam deploy`."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

GLUE_SCRIPTS_PREFIX = "code/glue/"
GLUE_LIBRARY_KEY = "code/glue/mlops.zip"
TRAINING_SOURCE_KEY = "code/training/sourcedir.tar.gz"
CONTRACTS_PREFIX = "contracts/"
_SKIP = {"__pycache__", ".pytest_cache"}


def _files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not _SKIP.intersection(p.relative_to(root).parts) and p.suffix != ".pyc"
    )


def mlops_zip(project_root: Path) -> bytes:
    """The shared package as ``mlops/...`` (Glue's --extra-py-files)."""
    package = project_root / "layers" / "shared" / "mlops"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(package):
            archive.write(path, f"mlops/{path.relative_to(package).as_posix()}")
    return buffer.getvalue()


def training_sourcedir(project_root: Path) -> bytes:
    """training/ plus the shared package's ``ml`` subpackage, as SageMaker script mode expects."""
    training = project_root / "training"
    package = project_root / "layers" / "shared" / "mlops"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in _files(training) if training.exists() else []:
            archive.add(path, path.relative_to(training).as_posix())
        archive.add(package / "__init__.py", "mlops/__init__.py")
        ml = package / "ml"
        for path in _files(ml) if ml.exists() else []:
            archive.add(path, f"mlops/ml/{path.relative_to(ml).as_posix()}")
    return buffer.getvalue()


def publish_code(s3_client: Any, artifacts_bucket: str, project_root: Path) -> list[str]:
    """Upload the Glue scripts (every ``glue/*.py``: each job's ScriptLocation names one),
    mlops.zip, the training sourcedir and the bundled contracts; returns the keys written."""
    project_root = Path(project_root)
    written: list[str] = []

    def put(key: str, body: bytes) -> None:
        s3_client.put_object(Bucket=artifacts_bucket, Key=key, Body=body)
        written.append(key)

    scripts = project_root / "glue"
    for script in sorted(scripts.glob("*.py")) if scripts.exists() else []:
        put(f"{GLUE_SCRIPTS_PREFIX}{script.name}", script.read_bytes())
    put(GLUE_LIBRARY_KEY, mlops_zip(project_root))
    put(TRAINING_SOURCE_KEY, training_sourcedir(project_root))
    contracts = project_root / "layers" / "shared" / "mlops" / "contracts"
    for contract in sorted(contracts.glob("*.yaml")) if contracts.exists() else []:
        put(f"{CONTRACTS_PREFIX}{contract.name}", contract.read_bytes())
    return written


def publish_to_stack(stack_name: str, project_root: Path) -> list[str]:
    """`make deploy`: find the stack's artifacts bucket and publish the code there (real AWS)."""
    import boto3

    outputs = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    by_key = {o["OutputKey"]: o["OutputValue"] for o in outputs.get("Outputs", [])}
    if "ArtifactsBucketName" not in by_key:
        raise RuntimeError(f"stack {stack_name} has no ArtifactsBucketName output")
    return publish_code(boto3.client("s3"), by_key["ArtifactsBucketName"], project_root)
