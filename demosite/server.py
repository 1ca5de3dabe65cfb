"""The demo site's HTTP server: stdlib ThreadingHTTPServer in a background thread on 127.0.0.1.

A site serving a ``Scenario`` can be moved to another day while it runs: ``DemoSite.set_day(n)``
in-process, or ``POST /admin/day?day=n`` from this machine when the site is bound to a loopback
address (``GET /admin/day`` says which day it is). robots.txt keeps crawlers out of /admin/.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from demosite.catalogue import Catalogue
from demosite.pages import ROBOTS_TXT, STANDARD, detail_page, index_page
from demosite.scenario import DEFAULT_PLAN, Plan, Scenario, SiteDay

# A flaky path fails at most this many times in a row, so a client that retries always gets it.
MAX_CONSECUTIVE_FAILURES = 2
ADMIN_DAY_PATH = "/admin/day"
HTML = "text/html; charset=utf-8"
# Status, headers and body of a response.
Answer = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class _View:
    """What the site serves now; replaced whole, so a request never mixes two days."""

    catalogue: Catalogue
    layout: str
    day: SiteDay | None


class DemoSite:
    """A running demo site; use as a context manager or call ``stop()``.

    ``source`` is a fixed ``Catalogue`` or a ``Scenario`` (served from day ``day``, movable with
    ``set_day``).
    """

    def __init__(
        self,
        source: Catalogue | Scenario,
        *,
        day: int = 1,
        flaky: float = 0.0,
        retry_after: int = 0,
        broken: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not 0.0 <= flaky < 1.0:
            raise ValueError(f"flaky must be in [0, 1), got {flaky}")
        self.scenario = source if isinstance(source, Scenario) else None
        if isinstance(source, Scenario):
            self._view = _view_of(source.day(day))
        else:
            self._view = _View(source, STANDARD, None)
        self.flaky = flaky
        self.retry_after = retry_after
        self.broken = frozenset(broken)
        self.request_log: list[tuple[str, int]] = []
        # Who asked, and over how many TCP connections (keep-alive clients reuse one).
        self.user_agents: Counter[str] = Counter()
        self.connections = 0
        self._attempts: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="demosite", daemon=True
        )
        self._thread.start()
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}/"
        # Anyone who can reach a site bound beyond loopback could move its calendar.
        self.admin_enabled = self.scenario is not None and _is_loopback(str(bound_host))
        self._stopped = False

    @property
    def catalogue(self) -> Catalogue:
        """The listings served now (the current day's, for a scenario)."""
        return self._view.catalogue

    @property
    def day(self) -> SiteDay | None:
        """The day served now; None for a site serving a fixed catalogue."""
        return self._view.day

    @property
    def layout(self) -> str:
        return self._view.layout

    def set_day(self, number: int) -> SiteDay:
        """Serve day ``number`` of the scenario from the next request on, without restarting."""
        if self.scenario is None:
            raise RuntimeError("this demo site serves a fixed catalogue, not a scenario")
        day = self.scenario.day(number)
        self._view = _view_of(day)
        return day

    @property
    def start_url(self) -> str:
        """Where a crawl of this site begins."""
        return f"{self.url}listings?page=1"

    def requested_paths(self) -> list[str]:
        with self._lock:
            return [path for path, _ in self.request_log]

    def stop(self) -> None:
        """Stop serving; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> DemoSite:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _flaky_status(self, path: str) -> int | None:
        """429 or 503 for a deterministic share of attempts (seed, path, attempt number)."""
        if self.flaky <= 0:
            return None
        with self._lock:
            attempt = self._attempts[path]
            self._attempts[path] += 1
            if self._failures[path] >= MAX_CONSECUTIVE_FAILURES:
                self._failures[path] = 0
                return None
            digest = hashlib.sha256(f"{self.catalogue.seed}:{path}:{attempt}".encode()).digest()
            if int.from_bytes(digest[:4], "big") / 2**32 >= self.flaky:
                self._failures[path] = 0
                return None
            self._failures[path] += 1
        return HTTPStatus.TOO_MANY_REQUESTS if digest[4] % 2 else HTTPStatus.SERVICE_UNAVAILABLE

    def record(self, path: str, status: int, user_agent: str) -> None:
        with self._lock:
            self.request_log.append((path, status))
            self.user_agents[user_agent] += 1

    def count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def respond(self, path: str) -> Answer:
        """Status, headers and body for a GET of ``path`` (a path plus query string)."""
        flaky = self._flaky_status(path)
        if flaky is not None:
            headers = {"Retry-After": str(self.retry_after)} if flaky == 429 else {}
            return flaky, headers, b"busy, try again later\n"
        if path in self.broken:
            return HTTPStatus.OK, {"Content-Type": HTML}, b""
        parts = urlsplit(path)
        if parts.path == "/robots.txt":
            return HTTPStatus.OK, {"Content-Type": "text/plain"}, ROBOTS_TXT.encode()
        view = self._view
        page: str | None = None
        if parts.path in ("/", "/listings"):
            try:
                number = int(parse_qs(parts.query).get("page", ["1"])[0])
            except ValueError:
                number = 0
            page = index_page(view.catalogue, number, view.layout)
        elif parts.path.startswith("/listing/"):
            page = detail_page(view.catalogue, parts.path.removeprefix("/listing/"), view.layout)
        if page is None:
            return _not_found()
        return HTTPStatus.OK, {"Content-Type": HTML}, page.encode()

    def admin(self, method: str, path: str, client: str) -> Answer | None:
        """The answer to an admin request, or None when ``path`` is not one."""
        parts = urlsplit(path)
        if parts.path != ADMIN_DAY_PATH:
            return None
        if not self.admin_enabled or not _is_loopback(client):
            return _not_found()
        if method == "POST":
            try:
                number = int(parse_qs(parts.query)["day"][0])
                self.set_day(number)
            except (KeyError, ValueError) as error:
                body = json.dumps({"error": f"expected ?day=<1..days>: {error}"}).encode()
                return HTTPStatus.BAD_REQUEST, {"Content-Type": "application/json"}, body
        day = self.day
        assert day is not None  # admin_enabled implies a scenario
        body = json.dumps(
            {
                "day": day.number,
                "days": day.plan.days,
                "date": day.date.isoformat(),
                "layout": day.layout,
                "index": day.index,
                "listings": len(day.catalogue.listings),
                "changes": list(day.changes),
            }
        ).encode()
        return HTTPStatus.OK, {"Content-Type": "application/json"}, body


def _handler_for(site: DemoSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections
        # Headers and body go out in separate writes; with Nagle on, a keep-alive client
        # waits out the delayed-ACK timer (~40 ms) on every response.
        disable_nagle_algorithm = True
        server_version = "DemoCars/1.0"

        def setup(self) -> None:
            super().setup()
            site.count_connection()

        def do_GET(self) -> None:
            answer = site.admin("GET", self.path, self.client_address[0])
            self._answer(answer or site.respond(self.path))

        def do_POST(self) -> None:
            # Read the body even though it is ignored, so a keep-alive connection stays in step.
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = site.admin("POST", self.path, self.client_address[0])
            self._answer(answer or _not_found())

        def _answer(self, answer: Answer) -> None:
            status, headers, body = answer
            site.record(self.path, int(status), self.headers.get("User-Agent", ""))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Requests are in ``request_log``; stderr stays quiet."""

    return Handler


def _not_found() -> Answer:
    return HTTPStatus.NOT_FOUND, {"Content-Type": HTML}, b"<h1>Not found</h1>\n"


def _view_of(day: SiteDay) -> _View:
    return _View(day.catalogue, day.layout, day)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    listings: int = 3000,
    seed: int = 7,
    flaky: float = 0.0,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    retry_after: int = 0,
    broken: Iterable[str] = (),
    plan: Plan = DEFAULT_PLAN,
    day: int = 1,
) -> DemoSite:
    """Generate a scenario and serve its day ``day`` in a background thread (port 0: a free port).

    Day 1 is ``Catalogue.generate(listings, seed)``; ``set_day`` moves through ``plan``'s days.
    ``flaky`` is the share of requests answered 429 (with ``Retry-After: retry_after``) or 503;
    ``broken`` lists paths (e.g. "/listing/L000003") answered 200 with an empty body.
    """
    return DemoSite(
        Scenario(seed=seed, listings=listings, plan=plan),
        day=day,
        flaky=flaky,
        retry_after=retry_after,
        broken=broken,
        host=host,
        port=port,
    )
