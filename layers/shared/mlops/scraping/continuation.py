"""The "Scrape Continues" event: how a crawl hands over to its next invocation.

The scrape function emits it on the default bus when its time runs out; its own rule
(template.yaml, ScrapeFunction's Continuation event) delivers it back, with the rule's retry
policy and DLQ, so the hand-over is as durable as the schedule's first event.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from mlops.clients import client
from mlops.settings import get_settings

SOURCE = "mlops.scrape"
CONTINUES = "Scrape Continues"


class ScrapeContinuation(BaseModel):
    """Detail of "Scrape Continues": the run whose checkpoint the next invocation resumes."""

    model_config = ConfigDict(extra="ignore")

    run_id: str = Field(min_length=1)
    dataset: str = Field(min_length=1)


def continue_crawl(run_id: str, dataset: str) -> None:
    """Emit "Scrape Continues" for ``run_id``; raises if EventBridge did not take it."""
    detail = ScrapeContinuation(run_id=run_id, dataset=dataset)
    response = client("events").put_events(
        Entries=[
            {
                "Source": SOURCE,
                "DetailType": CONTINUES,
                "Detail": json.dumps(detail.model_dump()),
                "EventBusName": get_settings().event_bus_name,
                "Resources": [],
            }
        ]
    )
    if response.get("FailedEntryCount"):
        # Raising keeps the lease and the checkpoint: Lambda's retry resumes and hands over.
        raise RuntimeError(f"Scrape Continues for {run_id} not accepted: {response['Entries']}")
