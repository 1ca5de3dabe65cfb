"""A local stand-in for API Gateway HTTP APIs: HTTP requests in, payload v2.0 events to a function.

Routes come from the template (the function's ``HttpApi`` events), so a path the template does
not route answers 404 exactly like API Gateway. Requests may carry the stage prefix
(``/dev/health``, as on the deployed URL, event stage ``dev``) or not (``/health``, event stage
``$default``); both shapes are ones API Gateway really sends.

The stage's throttling is enforced as API Gateway does (``Throttle``): the template's
``DefaultRouteSettings`` (and ``RouteSettings`` per route key) give each route a token bucket,
and a request that finds it empty is answered 429 ``{"message":"Too Many Requests"}`` without
invoking the function. ``serve_http_api(..., throttle=False)`` or ``LOCALCLOUD_API_THROTTLING=0``
in the environment turns it off (load tests, the API fuzz test); nothing else does.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

NOT_FOUND = {"message": "Not Found"}
INTERNAL_ERROR = {"message": "Internal Server Error"}
TOO_MANY_REQUESTS = {"message": "Too Many Requests"}
THROTTLING_ENV = "LOCALCLOUD_API_THROTTLING"
# The account's default limits per Region (API Gateway quotas): what a stage that sets only
# one of rate and burst keeps for the other.
ACCOUNT_RATE, ACCOUNT_BURST = 10_000.0, 5_000
_TEXT_TYPES = re.compile(
    r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)|application/[^;]*\+(json|xml))"
)


class Invoker(Protocol):
    """What the server needs from the local cloud."""

    def invoke(self, function: str, event: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST … or ANY
    path: str  # /predictions, /items/{id}, /{proxy+}, or $default
    pattern: re.Pattern[str] | None

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.pattern is None or self.method not in ("ANY", method):
            return None
        found = self.pattern.fullmatch(path)
        return {k: unquote(v) for k, v in found.groupdict().items()} if found else None


def _compile(path: str) -> re.Pattern[str]:
    regex = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("+}"):
            regex += f"(?P<{part[1:-2]}>.+)"
        elif part.startswith("{"):
            regex += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(regex)


def _sam_template(cloud: Any) -> dict[str, Any]:
    template = getattr(cloud, "template", None)
    if isinstance(getattr(template, "sam", None), dict):
        return template.sam
    from samtranslator.yaml_helper import yaml_parse

    root = Path(getattr(cloud, "project_root", Path.cwd()))
    return yaml_parse((root / "template.yaml").read_text())


def routes_of(sam: dict[str, Any], function: str) -> tuple[list[Route], str | None]:
    """The function's HttpApi routes in the SAM template, and the logical id of their API."""
    resource = sam.get("Resources", {}).get(function)
    if resource is None:
        raise KeyError(f"{function} is not a resource of the template")
    routes: list[Route] = []
    api_id: str | None = None
    for event in (resource.get("Properties", {}).get("Events") or {}).values():
        if event.get("Type") != "HttpApi":
            continue
        props = event.get("Properties") or {}
        ref = props.get("ApiId")
        if isinstance(ref, dict) and "Ref" in ref:
            api_id = ref["Ref"]
        method = str(props.get("Method", "ANY")).upper()
        path = props.get("Path")
        if path is None or path == "$default":
            routes.append(Route("ANY", "$default", re.compile(".*")))
        else:
            routes.append(
                Route(
                    "ANY" if method in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method,
                    path,
                    _compile(path),
                )
            )
    # API Gateway prefers the most specific route: literal paths, then parameters, $default last.
    routes.sort(key=lambda r: (r.path == "$default", "+}" in r.path, "{" in r.path, -len(r.path)))
    return routes, api_id


@dataclass(frozen=True)
class Cors:
    """The API's CorsConfiguration: API Gateway answers preflights itself when it is set."""

    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    max_age: int | None

    @classmethod
    def of(
        cls, sam: dict[str, Any], api_id: str | None, parameters: dict[str, Any] | None = None
    ) -> Cors | None:
        api = sam.get("Resources", {}).get(api_id or "", {})
        config = (api.get("Properties") or {}).get("CorsConfiguration")
        if not isinstance(config, dict):
            return None
        origins = _resolve(config.get("AllowOrigins"), sam, parameters or {})
        return cls(
            origins=tuple(origins if isinstance(origins, list) else [origins] if origins else ()),
            methods=tuple(config.get("AllowMethods") or ()),
            headers=tuple(config.get("AllowHeaders") or ()),
            max_age=config.get("MaxAge"),
        )

    def allow_origin(self, origin: str | None) -> str | None:
        if not origin:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def preflight(self, origin: str | None) -> list[tuple[str, str]]:
        allowed = self.allow_origin(origin)
        if allowed is None:
            return []
        headers = [("access-control-allow-origin", allowed)]
        if self.methods:
            headers.append(("access-control-allow-methods", ",".join(self.methods)))
        if self.headers:
            headers.append(("access-control-allow-headers", ",".join(self.headers)))
        if self.max_age is not None:
            headers.append(("access-control-max-age", str(self.max_age)))
        return headers


def _resolve(value: Any, sam: dict[str, Any], parameters: dict[str, Any]) -> Any:
    """``value`` with ``Ref`` to a template parameter (its value, else its default) and
    ``Fn::Split`` resolved: what CORS settings built from parameters use."""
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        declared = (sam.get("Parameters") or {}).get(name, {})
        return str(parameters.get(name, declared.get("Default", "")))
    if isinstance(value, dict) and "Fn::Split" in value:
        separator, text = value["Fn::Split"]
        return str(_resolve(text, sam, parameters)).split(separator)
    if isinstance(value, list):
        return [_resolve(item, sam, parameters) for item in value]
    return value


@dataclass
class TokenBucket:
    """API Gateway's throttling algorithm: a bucket of ``burst`` tokens refilled at ``rate``
    tokens a second; each request takes one, and finds none when requests outrun the rate
    for longer than the burst absorbs ("Throttling requests to your HTTP API",
    https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html)."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _at: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._tokens, self._at = float(self.burst), self.clock()  # a new stage starts full

    def take(self) -> bool:
        """Take a token for one request; False when the bucket is empty (a 429)."""
        with self._lock:
            now = self.clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass
class Throttle:
    """The stage's route throttling: ``DefaultRouteSettings`` for every route, ``RouteSettings``
    for the route keys it names; each route has its own bucket, as route-level limits do."""

    default: tuple[float, int] | None
    per_route: dict[str, tuple[float, int]]
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(
        cls, sam: dict[str, Any], api_id: str | None, parameters: dict[str, Any] | None = None
    ) -> Throttle | None:
        props = (sam.get("Resources", {}).get(api_id or "", {}).get("Properties")) or {}

        def limits(settings: Any) -> tuple[float, int] | None:
            if not isinstance(settings, dict):
                return None
            rate = _resolve(settings.get("ThrottlingRateLimit"), sam, parameters or {})
            burst = _resolve(settings.get("ThrottlingBurstLimit"), sam, parameters or {})
            if rate is None and burst is None:
                return None
            # A stage sets one of the two and leaves the other at the account's level.
            return (
                float(rate) if rate is not None else ACCOUNT_RATE,
                int(burst) if burst is not None else ACCOUNT_BURST,
            )

        default = limits(props.get("DefaultRouteSettings"))
        routes = props.get("RouteSettings") or {}
        per_route = {key: found for key, value in routes.items() if (found := limits(value))}
        if default is None and not per_route:
            return None
        return cls(default, per_route)

    def admit(self, route_key: str) -> bool:
        """Whether a request on ``route_key`` may go on (False: answer 429)."""
        limits = self.per_route.get(route_key, self.default)
        if limits is None:
            return True
        with self._lock:
            bucket = self._buckets.get(route_key)
            if bucket is None:
                bucket = self._buckets[route_key] = TokenBucket(rate=limits[0], burst=limits[1])
        return bucket.take()


def _now() -> tuple[str, int]:
    now = datetime.now(timezone.utc)
    return now.strftime("%d/%b/%Y:%H:%M:%S +0000"), int(now.timestamp() * 1000)


class HttpApiServer:
    """A running local HTTP API; use as a context manager or call ``stop()``."""

    def __init__(
        self,
        cloud: Invoker,
        function: str,
        routes: list[Route],
        stage: str,
        api_id: str,
        account_id: str,
        host: str,
        port: int,
        cors: Cors | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.cloud = cloud
        self.function = function
        self.routes = routes
        self.stage = stage
        self.api_id = api_id
        self.account_id = account_id
        self.cors = cors
        self.throttle = throttle
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"http-api-{function}", daemon=True
        )
        self._thread.start()
        self._stopped = False

    @property
    def url(self) -> str:
        """Base URL without the stage prefix, e.g. ``http://127.0.0.1:50123/``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def stage_url(self) -> str:
        """Base URL as deployed, with the stage prefix: ``http://127.0.0.1:50123/dev/``."""
        return f"{self.url}{self.stage}/"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> HttpApiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ request → event
    def route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    def event(
        self,
        *,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        protocol: str,
    ) -> dict[str, Any] | None:
        """The payload v2.0 event for one request, or None when no route matches."""
        split = urlsplit(target)
        raw_path = split.path or "/"
        stage = "$default"
        route_path = raw_path
        prefix = f"/{self.stage}"
        if self.stage and (raw_path == prefix or raw_path.startswith(prefix + "/")):
            stage = self.stage
            route_path = raw_path[len(prefix) :] or "/"
        matched = self.route(method, unquote(route_path))
        if matched is None:
            return None
        route, path_params = matched
        merged: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in headers:
            lower = name.lower()
            if lower == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
                continue
            merged[lower] = f"{merged[lower]},{value}" if lower in merged else value
        # API Gateway adds these; handlers read the client address from them.
        merged["x-forwarded-for"] = (
            f"{merged['x-forwarded-for']},{source_ip}" if "x-forwarded-for" in merged else source_ip
        )
        merged.setdefault("x-forwarded-proto", "http")
        merged.setdefault("x-forwarded-port", merged.get("host", "").rpartition(":")[2] or "80")
        query: dict[str, str] = {}
        for name, value in parse_qsl(split.query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        request_id = base64.b32encode(uuid.uuid4().bytes)[:16].decode().rstrip("=")
        when, epoch = _now()
        domain = merged.get("host", "localhost")
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.key,
            "rawPath": raw_path,
            "rawQueryString": split.query,
            "headers": merged,
            "requestContext": {
                "accountId": self.account_id,
                "apiId": self.api_id,
                "domainName": domain,
                "domainPrefix": domain.split(".")[0].split(":")[0],
                "http": {
                    "method": method,
                    "path": raw_path,
                    "protocol": protocol,
                    "sourceIp": source_ip,
                    "userAgent": merged.get("user-agent", ""),
                },
                "requestId": request_id,
                "routeKey": route.key,
                "stage": stage,
                "time": when,
                "timeEpoch": epoch,
            },
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if path_params:
            event["pathParameters"] = path_params
        if body:
            if _TEXT_TYPES.match(merged.get("content-type", "text/plain")):
                event["body"] = body.decode("utf-8", errors="replace")
            else:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        return event


def to_http(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A function's result as status, headers and body, by the payload v2.0 response rules.

    A dict with ``statusCode`` is used as given; any other JSON value is the body of a 200
    ``application/json`` answer (API Gateway "infers" the response).
    """
    if not isinstance(result, dict) or "statusCode" not in result:
        body = result if isinstance(result, str) else json.dumps(result)
        return 200, [("content-type", "application/json")], body.encode()
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, raw


def _handler_class(api: HttpApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http api: " + format, *args)

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            names = {name.lower() for name, _ in headers}
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            if "content-type" not in names:
                self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            origin = self.headers.get("origin")
            preflight = self.command == "OPTIONS" and self.headers.get(
                "access-control-request-method"
            )
            if api.cors is not None and preflight:
                self._send(204, api.cors.preflight(origin), b"")
                return
            event = api.event(
                method=self.command,
                target=self.path,
                headers=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                protocol=self.request_version,
            )
            if event is None:
                self._send(404, [], json.dumps(NOT_FOUND).encode())
                return
            request_id = event["requestContext"]["requestId"]
            started = time.perf_counter()
            if api.throttle is not None and not api.throttle.admit(event["routeKey"]):
                # Refused before the integration: the function never sees the request.
                status, headers = 429, [("content-type", "application/json")]
                payload = json.dumps(TOO_MANY_REQUESTS, separators=(",", ":")).encode()
            else:
                status, headers, payload = self._invoke(event)
            headers.append(("apigw-requestid", request_id))
            allowed = api.cors.allow_origin(origin) if api.cors else None
            if allowed and not any(k.lower() == "access-control-allow-origin" for k, _ in headers):
                headers.append(("access-control-allow-origin", allowed))
            log.debug(
                "http api: %s %s -> %s in %.1f ms",
                self.command,
                self.path,
                status,
                (time.perf_counter() - started) * 1000,
            )
            self._send(status, headers, payload)

        def _invoke(self, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
            try:
                return to_http(api.cloud.invoke(api.function, event))
            except Exception:
                # Like API Gateway: the client sees a bare 500, the error stays in the logs.
                log.exception("http api: %s failed on %s", api.function, event["routeKey"])
                return 500, [], json.dumps(INTERNAL_ERROR).encode()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    return Handler


def serve_http_api(
    cloud: Any,
    function: str = "WebFunction",
    host: str = "127.0.0.1",
    port: int = 0,
    throttle: bool | None = None,
) -> HttpApiServer:
    """Serve ``function``'s HttpApi routes on ``host:port`` (0 = a free port) until stopped.

    ``throttle``: apply the template's stage throttling (default: unless the environment sets
    ``LOCALCLOUD_API_THROTTLING=0``)."""
    sam = _sam_template(cloud)
    routes, api_logical_id = routes_of(sam, function)
    if not routes:
        raise ValueError(f"{function} has no HttpApi events in the template")
    parameters = getattr(cloud, "parameters", {}) or {}
    resources = getattr(cloud, "resources", {}) or {}
    throttling = throttle if throttle is not None else os.environ.get(THROTTLING_ENV) != "0"
    return HttpApiServer(
        cloud,
        function,
        routes,
        stage=str(parameters.get("Stage", "dev")),
        api_id=str(resources.get(api_logical_id or "", "") or "localapi00"),
        account_id=str(getattr(cloud, "account_id", "123456789012")),
        host=host,
        port=port,
        cors=Cors.of(sam, api_logical_id, parameters),
        throttle=Throttle.of(sam, api_logical_id, parameters) if throttling else None,
    )
