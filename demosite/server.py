"""The demo site's HTTP server: stdlib ThreadingHTTPServer in a background thread on 127.0.0.1."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from demosite.catalogue import Catalogue
from demosite.pages import ROBOTS_TXT, detail_page, index_page

# A flaky path fails at most this many times in a row, so a client that retries always gets it.
MAX_CONSECUTIVE_FAILURES = 2


class DemoSite:
    """A running demo site; use as a context manager or call ``stop()``."""

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        flaky: float = 0.0,
        retry_after: int = 0,
        broken: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not 0.0 <= flaky < 1.0:
            raise ValueError(f"flaky must be in [0, 1), got {flaky}")
        self.catalogue = catalogue
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
        self._stopped = False

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

    def respond(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for a GET of ``path`` (a path plus query string)."""
        flaky = self._flaky_status(path)
        if flaky is not None:
            headers = {"Retry-After": str(self.retry_after)} if flaky == 429 else {}
            return flaky, headers, b"busy, try again later\n"
        html = "text/html; charset=utf-8"
        if path in self.broken:
            return HTTPStatus.OK, {"Content-Type": html}, b""
        parts = urlsplit(path)
        if parts.path == "/robots.txt":
            return HTTPStatus.OK, {"Content-Type": "text/plain"}, ROBOTS_TXT.encode()
        page: str | None = None
        if parts.path in ("/", "/listings"):
            try:
                number = int(parse_qs(parts.query).get("page", ["1"])[0])
            except ValueError:
                number = 0
            page = index_page(self.catalogue, number)
        elif parts.path.startswith("/listing/"):
            page = detail_page(self.catalogue, parts.path.removeprefix("/listing/"))
        if page is None:
            return HTTPStatus.NOT_FOUND, {"Content-Type": html}, b"<h1>Not found</h1>\n"
        return HTTPStatus.OK, {"Content-Type": html}, page.encode()


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
            status, headers, body = site.respond(self.path)
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


def serve(
    listings: int = 3000,
    seed: int = 7,
    flaky: float = 0.0,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    retry_after: int = 0,
    broken: Iterable[str] = (),
) -> DemoSite:
    """Generate a catalogue and serve it in a background thread (port 0 picks a free port).

    ``flaky`` is the share of requests answered 429 (with ``Retry-After: retry_after``) or 503;
    ``broken`` lists paths (e.g. "/listing/L000003") answered 200 with an empty body.
    """
    return DemoSite(
        Catalogue.generate(listings=listings, seed=seed),
        flaky=flaky,
        retry_after=retry_after,
        broken=broken,
        host=host,
        port=port,
    )
