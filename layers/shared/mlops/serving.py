"""Which model version an endpoint serves: one rule, for the deploy function and the CLI alike.

The endpoint serves the newest Approved version of its model package group, unless a version
is pinned (the group's ``mlops:pinned-version`` tag) and that version is Approved. The rule
reads the registry as it is now, never an event's status, so late, repeated or reordered
events all reach the same answer. A pin lives on the group so the console, the CLI and the
deploy function share it; changing it puts a "Serving Pin Changed" event (source
``mlops.serving``) that the deploy function's rule matches, because tag changes on a model
package group emit no SageMaker event of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

APPROVED = "Approved"
PIN_TAG = "mlops:pinned-version"
EVENT_SOURCE = "mlops.serving"
PIN_CHANGED = "Serving Pin Changed"
NEWEST, PINNED = "newest Approved", "pinned"


@dataclass(frozen=True)
class Registry:
    """What the rule reads of one group: each version's approval status and ARN, and the pin."""

    group: str
    group_arn: str | None = None
    statuses: dict[int, str] = field(default_factory=dict)
    arns: dict[int, str] = field(default_factory=dict)
    pinned: int | None = None

    def with_status(self, version: int, status: str, arn: str) -> Registry:
        """The same registry with one version's status as a fresher read says."""
        return replace(
            self, statuses=self.statuses | {version: status}, arns=self.arns | {version: arn}
        )

    @property
    def approved(self) -> list[int]:
        return sorted(v for v, status in self.statuses.items() if status == APPROVED)


@dataclass(frozen=True)
class Choice:
    """The version that should serve (None: none may) and why."""

    version: int | None
    why: str
    ignored_pin: int | None = None

    def describe(self) -> str:
        """E.g. "v5 (newest Approved)", "v3 (pinned)", "nothing (no Approved version)"."""
        if self.version is None:
            text = "nothing (no Approved version)"
        else:
            text = f"v{self.version} ({self.why})"
        if self.ignored_pin is not None:
            text += f"; the pin on v{self.ignored_pin} is ignored while it is not Approved"
        return text


def choose(registry: Registry) -> Choice:
    """The serving rule."""
    approved = registry.approved
    if registry.pinned is not None and registry.pinned in approved:
        return Choice(registry.pinned, PINNED)
    ignored = registry.pinned
    if approved:
        return Choice(approved[-1], NEWEST, ignored)
    return Choice(None, "no Approved version", ignored)


def pin_of(tags: list[dict[str, str]]) -> int | None:
    """The pinned version among a group's tags; the last value of the key wins."""
    values = [t["Value"] for t in tags if t.get("Key") == PIN_TAG]
    return int(values[-1]) if values and values[-1].strip().isdigit() else None


def missing(error: Exception) -> bool:
    """A SageMaker error saying the resource does not exist."""
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in ("ValidationException", "ResourceNotFound", "ValidationError")


def read(sagemaker: Any, group: str) -> Registry:
    """The group's versions and pin as the registry has them now (empty if there is no group)."""
    try:
        group_arn = sagemaker.describe_model_package_group(ModelPackageGroupName=group)[
            "ModelPackageGroupArn"
        ]
    except sagemaker.exceptions.ClientError as error:
        if missing(error):
            return Registry(group)
        raise
    statuses: dict[int, str] = {}
    arns: dict[int, str] = {}
    for page in sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group
    ):
        for summary in page.get("ModelPackageSummaryList", []):
            version = summary.get("ModelPackageVersion")
            if version is None:
                continue
            statuses[int(version)] = str(summary.get("ModelApprovalStatus", ""))
            arns[int(version)] = str(summary["ModelPackageArn"])
    tags: list[dict[str, str]] = []
    for page in sagemaker.get_paginator("list_tags").paginate(ResourceArn=group_arn):
        tags += page.get("Tags", [])
    return Registry(group, group_arn, statuses, arns, pin_of(tags))
