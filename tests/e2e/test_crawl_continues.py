"""A crawl longer than the scrape function's timeout, on the strict local cloud: it hands over
from invocation to invocation, survives being killed midway, and lands once, complete."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

import demosite
from functions.scrape import app
from localcloud.cloud import PROJECT_ROOT, LocalCloud
from mlops import lake

pytestmark = pytest.mark.e2e

LISTINGS = 1500
TIMEOUT_SECONDS = 3


def short_timeout_template() -> str:
    """template.yaml with the scrape function's timeout below ScrapeTimeoutSeconds' minimum,
    so a small site needs several invocations (JSON is YAML)."""
    sam = yaml_parse((PROJECT_ROOT / "template.yaml").read_text())
    sam["Resources"]["ScrapeFunction"]["Properties"]["Timeout"] = TIMEOUT_SECONDS
    return json.dumps(sam)


def test_a_crawl_killed_midway_resumes_and_lands_every_listing_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a first invocation that misjudges its time and is killed at the function's timeout
    budgets = iter([60.0])
    honest = app.time_budget
    monkeypatch.setattr(app, "time_budget", lambda context: next(budgets, None) or honest(context))

    with (
        LocalCloud(
            strict=True,
            parameters={"PolitenessDelaySeconds": "0"},
            executors=[],
            http_api=False,
            template_text=short_timeout_template(),
        ) as cloud,
        demosite.serve(listings=LISTINGS) as site,
    ):
        # when the schedule fires for a site that takes several invocations to crawl
        cloud.fire_schedule("ScrapeFunction", {"start_url": f"{site.url}listings?page=1"})
        assert cloud.wait_quiescent(timeout=300)
        scrapes = [i for i in cloud.invocations if i["function"] == "ScrapeFunction"]
        s3 = cloud.client("s3")
        raw = cloud.resources["RawBucket"]
        found = s3.list_objects_v2(Bucket=raw).get("Contents", [])
        manifests = [o["Key"] for o in found if o["Key"].endswith(lake.MANIFEST)]
        manifest: dict[str, Any] = json.loads(
            s3.get_object(Bucket=raw, Key=manifests[0])["Body"].read()
        )
        fetched = Counter(p for p in site.requested_paths() if p.startswith("/listing/"))
        dead_letters = list(cloud.dead_letters)

    # then the killed invocation was retried, the crawl continued over several invocations,
    assert "Task timed out" in (scrapes[0]["error"] or "")
    failures = [(n, s.get("error")) for n, s in enumerate(scrapes) if not s["ok"]]
    assert failures[1:] == [] and len(scrapes) >= 3, failures
    assert dead_letters == []
    # one manifest landed, for the whole site, after the last invocation
    assert len(manifests) == 1
    assert manifest["records"] == LISTINGS and manifest["capped_by"] is None
    assert manifest["invocations"] == len(scrapes)
    # and only the page in flight when the first invocation was killed was fetched twice
    assert sorted(fetched) == sorted(f"/listing/{i}" for i in site.catalogue.published)
    assert sum(n - 1 for n in fetched.values()) <= 1
