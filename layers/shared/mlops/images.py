"""ECR image URIs of AWS's prebuilt scikit-learn containers, without the SageMaker SDK.

The registry accounts per region come from ``mlops/data/sklearn_images.json``, generated at
build time by ``tools/gen_image_uris.py`` from the SDK's own image URI data.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Literal

DEFAULT_SKLEARN_VERSION = "1.9-0"
Scope = Literal["training", "inference"]


class UnknownImage(ValueError):
    """No prebuilt image is known for the requested version, scope or region."""


@cache
def _config() -> dict[str, Any]:
    text = resources.files("mlops").joinpath("data/sklearn_images.json").read_text()
    return json.loads(text)


def _domain(region: str) -> str:
    if region.startswith("cn-"):
        return "amazonaws.com.cn"
    if region.startswith("us-isob-"):
        return "sc2s.sgov.gov"
    if region.startswith("us-iso-"):
        return "c2s.ic.gov"
    return "amazonaws.com"


def sklearn_versions(scope: Scope = "training") -> list[str]:
    """Container versions known for ``scope``."""
    return sorted(_config().get(scope, {}).get("versions", {}))


def sklearn_image_uri(
    region: str,
    version: str = DEFAULT_SKLEARN_VERSION,
    scope: Scope = "training",
    py_version: str = "py3",
    processor: str = "cpu",
) -> str:
    """``<account>.dkr.ecr.<region>.<domain>/sagemaker-scikit-learn:<version>-cpu-py3``."""
    versions = _config().get(scope, {}).get("versions", {})
    entry = versions.get(version)
    if entry is None:
        raise UnknownImage(
            f"scikit-learn {version} ({scope}) is not known; known: {sorted(versions)}"
        )
    account = entry["registries"].get(region)
    if account is None:
        raise UnknownImage(f"scikit-learn {version} ({scope}) has no registry in {region}")
    if processor not in entry["processors"] or py_version not in entry["py_versions"]:
        raise UnknownImage(
            f"scikit-learn {version} supports processors {entry['processors']} "
            f"and {entry['py_versions']}, not {processor}/{py_version}"
        )
    return (
        f"{account}.dkr.ecr.{region}.{_domain(region)}/{entry['repository']}:"
        f"{version}-{processor}-{py_version}"
    )
