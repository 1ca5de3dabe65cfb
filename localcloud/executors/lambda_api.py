"""Lambda's Invoke API for the template's functions in the local cloud.

The functions run in-process (localcloud.runtime), not in moto, so moto's Invoke answers
ResourceNotFound for them. This executor hooks moto's Lambda backend: an Invoke of a template
function (by name or ARN) runs it as Lambda would, which lets AWS-API-only tools
(``mlops redrive``) drive the local cloud exactly as they drive AWS:

* ``InvocationType=Event``: accepted at once (202); the event is then handled with the
  function's asynchronous retries and dead-letter queue, in a tracked background thread;
* ``RequestResponse``: the handler runs and its result is the payload; an error comes back as
  Lambda's ``X-Amz-Function-Error: Unhandled`` with ``errorMessage``/``errorType``;
* ``DryRun``: 204, nothing runs.

Any other function name falls through to moto.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from localcloud.executors.base import MotoPatches

if TYPE_CHECKING:  # pragma: no cover - typing only
    from localcloud.cloud import LocalCloud


def _header(headers: Any, name: str, default: str) -> str:
    for key, value in dict(headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return default


class LambdaInvokeApi:
    """See the module docstring."""

    def __init__(self) -> None:
        self._cloud: LocalCloud | None = None
        self._patches = MotoPatches()

    def start(self, cloud: LocalCloud) -> None:
        from moto.backends import get_backend

        self._cloud = cloud
        backend = get_backend("lambda")[cloud.account_id][cloud.region]
        self._patches.set(backend, "invoke", self._wrap(backend.invoke))

    def stop(self) -> None:
        self._patches.restore()
        self._cloud = None

    def _function(self, name: str) -> str | None:
        assert self._cloud is not None
        for spec in self._cloud.functions.values():
            if name in (spec.name, spec.arn) or name.split(":")[-1] == spec.name:
                return spec.logical_id
        return None

    def _wrap(self, original: Any) -> Any:
        def invoke(
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: dict[str, Any],
        ) -> Any:
            cloud = self._cloud
            logical_id = self._function(function_name) if cloud else None
            if cloud is None or logical_id is None:
                return original(function_name, qualifier, body, headers, response_headers)
            kind = _header(headers, "X-Amz-Invocation-Type", "RequestResponse")
            if kind == "DryRun":
                return b""
            event = json.loads(body or "{}")
            if kind == "Event":
                cloud.submit(cloud.invoke_async, logical_id, event, name=f"invoke:{logical_id}")
                return b""
            try:
                result = cloud.invoke(logical_id, event)
            except Exception as exc:
                response_headers["x-amz-function-error"] = "Unhandled"
                error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
                return json.dumps(error).encode()
            return json.dumps(result, default=str).encode()

        return invoke
