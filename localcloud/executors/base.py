"""The contract between the local cloud and the executors that emulate managed compute."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - typing only
    from localcloud.cloud import LocalCloud


@runtime_checkable
class CloudServices(Protocol):
    """What a running local cloud offers executors (implemented by localcloud.cloud.LocalCloud)."""

    endpoint_url: str
    region: str
    account_id: str
    workdir: pathlib.Path
    project_root: pathlib.Path
    parameters: dict[str, str]
    resources: dict[str, str]

    def client(self, service: str) -> Any: ...

    def emit(
        self,
        source: str,
        detail_type: str,
        detail: dict[str, Any],
        resources: list[str] | None = None,
    ) -> None: ...

    def submit(self, fn: Callable[..., Any], *args: Any, name: str) -> Any: ...

    def subprocess_env(self) -> dict[str, str]: ...

    def set_service_endpoint(self, env_var: str, url: str) -> None: ...

    def invoke(self, function: str, event: dict[str, Any]) -> Any: ...


@runtime_checkable
class Executor(Protocol):
    """Emulates one kind of managed compute (Glue, SageMaker training, endpoints, registry)."""

    def start(self, cloud: LocalCloud) -> None:
        """Hook into moto backends, start threads/servers; called after provisioning."""
        ...

    def stop(self) -> None:
        """Stop everything start() began and restore patched moto methods; idempotent."""
        ...
