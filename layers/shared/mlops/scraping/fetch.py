"""Polite HTTP fetching: one keep-alive session, robots.txt, a politeness delay, and retries.

Retries cover 429, 5xx, timeouts and connection errors with exponential backoff, and honour a
``Retry-After`` header. A URL that robots.txt disallows is never requested.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import requests

from mlops.observability import logger
from mlops.scraping.spec import HttpPolicy

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class FetchError(RuntimeError):
    """A URL that could not be reached, even after retries."""


class DisallowedByRobots(RuntimeError):
    """A request for a URL that the site's robots.txt forbids (a bug in the caller)."""


@dataclass(frozen=True)
class Response:
    url: str
    status: int
    content: bytes
    fetched_at: str


class Fetcher:
    """Fetches pages of one or more sites on behalf of one crawl."""

    def __init__(
        self,
        policy: HttpPolicy,
        user_agent: str,
        politeness_delay: float = 0.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy
        self.user_agent = user_agent
        self.politeness_delay = politeness_delay
        self.requests_made = 0
        self.retries = 0
        self._sleep = sleep
        self._last_request: float | None = None
        self._robots: dict[str, RobotFileParser] = {}
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": user_agent, "Accept": "text/html,*/*;q=0.8"})

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def allowed(self, url: str) -> bool:
        """Whether robots.txt of the URL's site lets this user agent fetch it."""
        return self._robots_for(url).can_fetch(self.user_agent, url)

    def get(self, url: str) -> Response:
        """The final answer for ``url`` after retries; ``FetchError`` if it was never reached."""
        if not self.allowed(url):
            raise DisallowedByRobots(f"robots.txt disallows {url}")
        return self._get(url)

    def _robots_for(self, url: str) -> RobotFileParser:
        parts = urlsplit(url)
        site = f"{parts.scheme}://{parts.netloc}"
        robots = self._robots.get(site)
        if robots is None:
            robots = RobotFileParser(f"{site}/robots.txt")
            answer = self._get(f"{site}/robots.txt")
            if answer.status == 200:
                robots.parse(answer.content.decode("utf-8", errors="replace").splitlines())
            elif answer.status in (401, 403):
                robots.disallow_all = True
            elif answer.status in RETRY_STATUSES or answer.status >= 500:
                # RFC 9309: while robots.txt is unreachable the whole site is off limits.
                raise FetchError(f"{site}/robots.txt answered HTTP {answer.status} after retries")
            else:
                robots.allow_all = True
            delay = robots.crawl_delay(self.user_agent)
            if delay is not None:
                self.politeness_delay = max(self.politeness_delay, float(delay))
            self._robots[site] = robots
        return robots

    def resume_after(self, wall_time: float | None) -> None:
        """Keep the politeness delay across invocations: the last request was at ``wall_time``."""
        if wall_time is not None:
            self._last_request = time.monotonic() - max(0.0, time.time() - wall_time)

    @property
    def last_request_wall_time(self) -> float | None:
        """When the last request went out, as a Unix time (for a continuation)."""
        if self._last_request is None:
            return None
        return time.time() - (time.monotonic() - self._last_request)

    def _wait_politely(self) -> None:
        if self._last_request is not None and self.politeness_delay > 0:
            remaining = self._last_request + self.politeness_delay - time.monotonic()
            if remaining > 0:
                self._sleep(remaining)

    def _get(self, url: str) -> Response:
        attempt = 0
        while True:
            self._wait_politely()
            self._last_request = time.monotonic()
            self.requests_made += 1
            try:
                answer = self._session.get(url, timeout=self.policy.timeout_seconds)
            except (requests.Timeout, requests.ConnectionError) as error:
                if attempt >= self.policy.max_retries:
                    tries = attempt + 1
                    raise FetchError(f"{url} unreachable after {tries} tries: {error}") from error
                delay = self._backoff(attempt, None)
            else:
                if answer.status_code not in RETRY_STATUSES or attempt >= self.policy.max_retries:
                    return Response(
                        url=url,
                        status=answer.status_code,
                        content=answer.content,
                        fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    )
                delay = self._backoff(attempt, answer.headers.get("Retry-After"))
                logger.debug("retrying", extra={"url": url, "status": answer.status_code})
            attempt += 1
            self.retries += 1
            if delay > 0:
                self._sleep(delay)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before the next attempt: the server's Retry-After if it gave one."""
        if retry_after is not None:
            seconds = _retry_after_seconds(retry_after)
            if seconds is not None:
                return min(seconds, self.policy.retry_after_max_seconds)
        return min(self.policy.backoff_seconds * 2**attempt, self.policy.backoff_max_seconds)


def _retry_after_seconds(value: str) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)
