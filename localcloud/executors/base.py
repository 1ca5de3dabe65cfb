"""The contract between the local cloud and the executors that emulate managed compute."""

from __future__ import annotations

import contextlib
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

    def role_client(self, role_arn: str, service: str, session: str) -> Any:
        """A client acting as ``role_arn``, checked against its policies in a strict cloud."""
        ...

    def emit(
        self,
        source: str,
        detail_type: str,
        detail: dict[str, Any],
        resources: list[str] | None = None,
    ) -> None: ...

    def submit(self, fn: Callable[..., Any], *args: Any, name: str) -> Any: ...

    def subprocess_env(self, role_arn: str | None = None, session: str = "") -> dict[str, str]:
        """Environment for code a managed service runs as ``role_arn`` (checked if strict)."""
        ...

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


class MotoPatches:
    """Attributes an executor sets on moto's backends or response classes to add what moto
    lacks; ``restore`` undoes them in reverse order so moto is as it was before ``start``."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, bool, Any]] = []

    def set(self, target: Any, name: str, replacement: Any) -> None:
        had_own = name in vars(target)
        self._undo.append((target, name, had_own, vars(target).get(name)))
        setattr(target, name, replacement)

    def restore(self) -> None:
        for target, name, had_own, previous in reversed(self._undo):
            if had_own:
                setattr(target, name, previous)
            else:
                # Set on an instance (or subclass): deleting it uncovers moto's own attribute.
                with contextlib.suppress(AttributeError):
                    delattr(target, name)
        self._undo.clear()
