"""Scrape: the schedule's "Scheduled Event" crawls the configured site into the raw zone.

A crawl that needs longer than one invocation hands over with a "Scrape Continues" event,
which this function also receives: the next invocation resumes the crawl's checkpoint. A crawl
stopped because the site's pages no longer match its spec returns normally (recorded FAILED and
notified): Lambda's retries would only fetch the same broken pages again.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops.observability import bind_run, logger, metrics, tracer
from mlops.runs import new_run_id
from mlops.scraping import ScrapeRequest, ScrapeSkipped, ScrapeStopped, run_scrape
from mlops.scraping.continuation import CONTINUES, ScrapeContinuation, continue_crawl
from mlops.scraping.run import ScrapeContinued

# Time kept back to checkpoint or land before Lambda's timeout: a minute, or a quarter of a
# short timeout (ScrapeTimeoutSeconds).
LANDING_MARGIN_SECONDS = 60.0
LANDING_MARGIN_SHARE = 0.25


class ScrapeOverrides(BaseModel):
    """Optional overrides in the event detail; the schedule itself sends ``{}``.

    The local cloud sets ``start_url`` to reach the demo site on its dynamic port.
    """

    model_config = ConfigDict(extra="forbid")

    start_url: str | None = None
    max_pages: int | None = Field(default=None, ge=1)
    max_items: int | None = Field(default=None, ge=1)
    dataset: str | None = None
    politeness_delay_seconds: float | None = Field(default=None, ge=0)


class ScheduledEvent(EventBridgeModel):
    detail: ScrapeOverrides


class ContinuationEvent(EventBridgeModel):
    detail: ScrapeContinuation


def time_budget(context: LambdaContext) -> float:
    """Seconds this invocation may crawl before it must checkpoint or land."""
    remaining = context.get_remaining_time_in_millis() / 1000
    return max(remaining - min(LANDING_MARGIN_SECONDS, LANDING_MARGIN_SHARE * remaining), 1.0)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    continues = event.get("detail-type") == CONTINUES
    try:
        if continues:
            continuation = parse(event=event, model=ContinuationEvent).detail
            run_id, overrides = continuation.run_id, ScrapeOverrides()
        else:
            scheduled = parse(event=event, model=ScheduledEvent)
            run_id = new_run_id(scheduled.time, event_id=scheduled.id)
            overrides = scheduled.detail
    except ValidationError:
        # Retrying cannot fix the event: it goes to the DLQ after the rule's two retries.
        metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
        raise
    bind_run(run_id, schedule=event.get("resources", []))
    request = ScrapeRequest(
        run_id=run_id,
        time_budget_seconds=time_budget(context),
        continuation=continues,
        **overrides.model_dump(exclude_none=True),
    )
    try:
        result = run_scrape(request, continue_with=continue_crawl)
    except Exception:
        metrics.add_metric(name="ScrapeRunsFailed", unit=MetricUnit.Count, value=1)
        raise
    if isinstance(result, ScrapeSkipped):
        # Another crawl of the site is running: a clean exit, not an error to retry.
        metrics.add_metric(name="ScrapeRunsSkipped", unit=MetricUnit.Count, value=1)
        return {
            "run_id": result.run_id,
            "dataset": result.dataset,
            "skipped": True,
            "reason": result.reason,
        }
    if isinstance(result, ScrapeStopped):
        # Failed, but not an error to retry: the reason is in the ledger and people were told.
        metrics.add_metric(name="ScrapeRunsFailed", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ScrapeRunsStopped", unit=MetricUnit.Count, value=1)
        return {
            "run_id": result.run_id,
            "dataset": result.dataset,
            "stopped": True,
            "reason": result.reason,
            "pages_read": result.pages_read,
            "pages_broken": result.pages_broken,
        }
    if isinstance(result, ScrapeContinued):
        metrics.add_metric(name="ScrapeContinuations", unit=MetricUnit.Count, value=1)
        return result.model_dump(mode="json") | {"continues": True}
    metrics.add_metric(name="PagesFetched", unit=MetricUnit.Count, value=result.pages_fetched)
    metrics.add_metric(name="ItemsScraped", unit=MetricUnit.Count, value=result.records)
    metrics.add_metric(
        name="PageErrors", unit=MetricUnit.Count, value=result.pages_failed + result.items_failed
    )
    return {
        "run_id": result.run_id,
        "dataset": result.dataset,
        "pages": result.pages_fetched,
        "records": result.records,
        "parts": len(result.part_keys),
        "manifest_key": result.manifest_key,
    }
