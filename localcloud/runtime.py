"""Running a Lambda handler in-process: its template environment, a Lambda-like context,
and its stdout/stderr (Powertools JSON logs, EMF metrics) captured in a per-function log."""

from __future__ import annotations

import importlib
import io
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

# Lambda's reserved variables: present in every real invocation, never set by the template.
_LAMBDA_RESERVED = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_EXECUTION_ENV",
    "_HANDLER",
    "LAMBDA_TASK_ROOT",
)


class FunctionImportError(RuntimeError):
    """The function's handler module is missing or fails to import (Runtime.ImportModuleError)."""


@dataclass
class FunctionSpec:
    """One AWS::Lambda::Function as the template declares it."""

    logical_id: str
    name: str
    arn: str
    code_dir: str
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    max_retries: int = 2
    max_event_age: int = 21600
    dead_letter_arn: str | None = None
    role_arn: str = ""

    @property
    def module(self) -> str:
        """``functions/scrape/`` + ``app.lambda_handler`` → ``functions.scrape.app``."""
        package = self.code_dir.strip("/").replace("/", ".")
        module = self.handler.rsplit(".", 1)[0]
        return f"{package}.{module}" if package else module

    @property
    def folder(self) -> str:
        return Path(self.code_dir.strip("/")).name


class LambdaContext:
    """The context object a Python Lambda handler receives."""

    def __init__(self, spec: FunctionSpec, region: str) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = spec.memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + spec.timeout
        self.region = region

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _ThreadRoutedStream(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: writes from a thread running a handler go to that
    function's log file, everything else to the real stream."""

    def __init__(self, original: TextIO, router: OutputRouter) -> None:
        self.original = original
        self.router = router

    def write(self, text: str) -> int:
        target = self.router.target()
        if target is None:
            return self.original.write(text)
        target.write(text)
        return len(text)

    def flush(self) -> None:
        target = self.router.target()
        (target or self.original).flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


class OutputRouter:
    """Installs the routed streams for the lifetime of a local cloud."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._local = threading.local()
        self._files: dict[str, TextIO] = {}
        self._lock = threading.Lock()
        self._installed: tuple[Any, Any] | None = None
        self.console: TextIO = sys.stdout

    def target(self) -> TextIO | None:
        return getattr(self._local, "target", None)

    def install(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out, err = sys.stdout, sys.stderr
        self.console = out
        routed_out, routed_err = _ThreadRoutedStream(out, self), _ThreadRoutedStream(err, self)
        sys.stdout, sys.stderr = routed_out, routed_err  # type: ignore[assignment]
        self._installed = (out, err)
        self._route_handlers()

    def _route_handlers(self) -> None:
        """Loggers created outside an invocation (e.g. Powertools imported by a test) hold a
        console stream object itself: wrap it so an invoking thread's records are routed too.
        Other threads still write to the same stream through the wrapper."""
        streams = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        consoles = {id(stream) for stream in streams}
        if self._installed:
            consoles |= {id(stream) for stream in self._installed}
        for handler in _stream_handlers():
            stream = handler.stream
            if not isinstance(stream, _ThreadRoutedStream) and id(stream) in consoles:
                handler.setStream(_ThreadRoutedStream(stream, self))  # type: ignore[arg-type]

    def uninstall(self) -> None:
        if self._installed is None:
            return
        out, err = self._installed
        if isinstance(sys.stdout, _ThreadRoutedStream):
            sys.stdout = out
        if isinstance(sys.stderr, _ThreadRoutedStream):
            sys.stderr = err
        # Give every handler holding a routed stream its real one back.
        for handler in _stream_handlers():
            if isinstance(handler.stream, _ThreadRoutedStream):
                handler.setStream(handler.stream.original)  # type: ignore[arg-type]
        self._installed = None
        with self._lock:
            for file in self._files.values():
                file.close()
            self._files.clear()

    def log_path(self, function: str) -> Path:
        return self.log_dir / f"{function}.log"

    @contextmanager
    def capture(self, function: str) -> Iterator[TextIO]:
        with self._lock:
            file = self._files.get(function)
            if file is None:
                file = self.log_path(function).open("a", encoding="utf-8", buffering=1)
                self._files[function] = file
        previous = self.target()
        self._local.target = file
        self._route_handlers()
        # Something (a test's capsys, a REPL) may have replaced sys.stdout since install().
        wrapped = []
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if not isinstance(current, _ThreadRoutedStream):
                routed = _ThreadRoutedStream(current, self)
                setattr(sys, name, routed)
                wrapped.append((name, routed, current))
        try:
            yield file
        finally:
            file.flush()
            self._local.target = previous
            for name, routed, current in wrapped:
                if getattr(sys, name) is routed:
                    setattr(sys, name, current)


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers: list[Any] = [logging.getLogger()]
    loggers += [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if type(handler) is logging.StreamHandler
    ]


@contextmanager
def environment(overlay: Mapping[str, str], remove: set[str]) -> Iterator[None]:
    """Set ``overlay`` and unset ``remove`` in os.environ, then put back only what was changed
    (other threads may touch unrelated variables meanwhile)."""
    touched = set(overlay) | remove
    saved = {name: os.environ.get(name) for name in touched}
    for name in remove - set(overlay):
        os.environ.pop(name, None)
    os.environ.update(overlay)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_handler(spec: FunctionSpec) -> Any:
    """Import the handler the way Lambda does, reporting a missing module clearly."""
    module_name, attribute = spec.module, spec.handler.rsplit(".", 1)[1]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        path = Path(spec.code_dir) / (spec.handler.rsplit(".", 1)[0] + ".py")
        raise FunctionImportError(
            f"{spec.logical_id}: cannot import handler module {module_name} ({path}): {exc}"
        ) from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise FunctionImportError(f"{spec.logical_id}: {module_name} has no handler {attribute}")
    return handler


def lambda_variables(spec: FunctionSpec, region: str) -> dict[str, str]:
    return {
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "_HANDLER": spec.handler,
        "LAMBDA_TASK_ROOT": spec.code_dir,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


RESERVED = set(_LAMBDA_RESERVED)
__all__ = [
    "RESERVED",
    "FunctionImportError",
    "FunctionSpec",
    "LambdaContext",
    "OutputRouter",
    "environment",
    "lambda_variables",
    "load_handler",
]
