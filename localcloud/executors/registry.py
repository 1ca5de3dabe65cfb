"""Model Registry events in the local cloud: what SageMaker emits and moto does not.

Wraps moto's ``create_model_package`` and ``update_model_package`` so each emits the real
"SageMaker Model Package State Change" event; approving in the console is
``update_model_package(ModelApprovalStatus="Approved")``, which is what ``mlops approve`` calls.

It also corrects moto where it differs from SageMaker: an update without
``ModelApprovalStatus`` clears the status, one without ``CustomerMetadataProperties`` drops the
package's metadata (the run id the deploy stage needs), and ``AddTags`` appends a second tag
with a key the resource already has, where SageMaker "adds or overwrites" (keys are unique per
resource; SageMaker API Reference, AddTags): the group's ``mlops:pinned-version`` pin is
re-set that way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from localcloud.executors.base import MotoPatches

if TYPE_CHECKING:  # pragma: no cover - typing only
    from localcloud.executors.base import CloudServices

log = logging.getLogger(__name__)

STATE_CHANGE = "SageMaker Model Package State Change"
# The detail carries DescribeModelPackage's fields (AWS's documented sample shows these).
_DETAIL_FIELDS = (
    "ModelPackageGroupName",
    "ModelPackageVersion",
    "ModelPackageArn",
    "ModelPackageName",
    "ModelPackageDescription",
    "CreationTime",
    "InferenceSpecification",
    "ModelPackageStatus",
    "ModelPackageStatusDetails",
    "CertifyForMarketplace",
    "ModelApprovalStatus",
    "ApprovalDescription",
    "MetadataProperties",
    "ModelMetrics",
    "CustomerMetadataProperties",
    "LastModifiedTime",
)


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def package_detail(package: Any) -> dict[str, Any]:
    """A moto ModelPackage as the event's ``detail``."""
    raw = package.gen_response_object()
    raw.setdefault("ModelPackageArn", raw.get("Arn") or package.arn)
    detail = {k: _iso(raw.get(k)) for k in _DETAIL_FIELDS if raw.get(k) not in (None, [], {})}
    # moto leaves the name out for versioned packages; the contract (ARCHITECTURE.md) has it.
    detail.setdefault("ModelPackageName", package.model_package_name)
    detail.setdefault("ModelPackageStatus", "Completed")
    detail.setdefault("CertifyForMarketplace", False)
    return detail


class ModelRegistryEvents:
    """Emits Model Package State Change events for packages created or updated in moto."""

    def __init__(self) -> None:
        self.cloud: CloudServices | None = None
        self._backend: Any = None
        self._patches = MotoPatches()

    def start(self, cloud: CloudServices) -> None:
        from moto.backends import get_backend

        self.cloud = cloud
        self._backend = get_backend("sagemaker")[cloud.account_id][cloud.region]
        for name, wrap in (
            ("create_model_package", self._wrap_create),
            ("update_model_package", self._wrap_update),
            ("add_tags", self._wrap_add_tags),
        ):
            self._patches.set(self._backend, name, wrap(getattr(self._backend, name)))

    def stop(self) -> None:
        self._patches.restore()

    def _emit(self, arn: str) -> None:
        assert self.cloud is not None
        package = self._backend.describe_model_package(arn)
        detail = package_detail(package)
        self.cloud.emit(
            "aws.sagemaker", STATE_CHANGE, detail, resources=[detail["ModelPackageArn"]]
        )
        log.info(
            "model package %s v%s is %s",
            detail.get("ModelPackageGroupName"),
            detail.get("ModelPackageVersion"),
            detail.get("ModelApprovalStatus"),
        )

    def _later(self, arn: str) -> None:
        # Emitted off the request thread: the event's PutEvents must not re-enter moto mid-call.
        assert self.cloud is not None
        self.cloud.submit(self._emit, arn, name=f"model-package-event:{arn}")

    def _wrap_create(self, original: Callable[..., str]) -> Callable[..., str]:
        def create_model_package(**kwargs: Any) -> str:
            arn = original(**kwargs)
            self._later(arn)
            return arn

        return create_model_package

    def _wrap_add_tags(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def add_tags(arn: str, tags: list[dict[str, str]]) -> Any:
            keys = {tag["Key"] for tag in tags}
            self._backend.delete_tags(arn, list(keys))
            return original(arn, tags)

        return add_tags

    def _wrap_update(self, original: Callable[..., str]) -> Callable[..., str]:
        def update_model_package(**kwargs: Any) -> str:
            package = self._backend.describe_model_package(kwargs["model_package_arn"])
            status_before = package.model_approval_status
            metadata_before = dict(package.customer_metadata_properties or {})
            description_before = package.approval_description
            arn = original(**kwargs)
            if kwargs.get("model_approval_status") is None:
                package.model_approval_status = status_before
            # SageMaker merges metadata updates into what the package has.
            package.customer_metadata_properties = metadata_before | dict(
                kwargs.get("customer_metadata_properties") or {}
            )
            for key in kwargs.get("customer_metadata_properties_to_remove") or []:
                package.customer_metadata_properties.pop(key, None)
            if kwargs.get("approval_description") is None:
                package.approval_description = description_before
            if package.model_approval_status != status_before:
                self._later(arn)
            return arn

        return update_model_package
