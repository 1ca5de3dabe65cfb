"""The demo listings site: deterministic data with known noise, messy pages, robots, flakiness."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import Counter

import lxml.html
import pytest
import requests

import demosite
from demosite.catalogue import COLUMNS, MAKE_SPELLINGS, MODELS, price_function


def test_the_same_seed_generates_the_same_catalogue_and_another_seed_a_different_one() -> None:
    first = demosite.Catalogue.generate(listings=50, seed=3)
    again = demosite.Catalogue.generate(listings=50, seed=3)
    other = demosite.Catalogue.generate(listings=50, seed=4)

    assert first.listings == again.listings
    assert first.published == again.published
    assert first.listings != other.listings


def test_listings_carry_the_dataset_columns_with_values_inside_the_contract_ranges() -> None:
    catalogue = demosite.Catalogue.generate(listings=500, seed=7)

    for listing in catalogue.listings:
        assert tuple(listing) == COLUMNS
        assert listing["model"] in MODELS[listing["make"]]
        assert 1995 <= listing["year"] <= 2026
        assert 0 <= listing["mileage"] <= 400_000
        assert 500 <= listing["price"] <= 150_000
        if listing["fuel"] == "electric":
            assert listing["engine_size"] is None
        else:
            assert 0.8 <= listing["engine_size"] <= 6.5


def test_prices_scatter_around_the_price_function_with_the_advertised_noise_sigma() -> None:
    catalogue = demosite.Catalogue.generate(listings=3000, seed=7)

    residuals = [
        listing["price"] - catalogue.true_price[listing["listing_id"]]
        for listing in catalogue.listings
        if listing["price"] > 500  # prices are floored at 500, which truncates the noise there
    ]

    assert abs(statistics.fmean(residuals)) < 0.1 * catalogue.noise_sigma
    assert statistics.pstdev(residuals) == pytest.approx(catalogue.noise_sigma, rel=0.05)


def test_true_price_is_the_price_function_of_the_clean_values() -> None:
    catalogue = demosite.Catalogue.generate(listings=20, seed=1)

    for listing in catalogue.listings:
        features = {k: v for k, v in listing.items() if k not in ("listing_id", "posted_date")}
        features.pop("price")
        assert catalogue.true_price[listing["listing_id"]] == price_function(**features)


def test_published_values_carry_the_mess_a_scraper_must_survive() -> None:
    catalogue = demosite.Catalogue.generate(listings=3000, seed=7)
    published = list(catalogue.published.values())
    canonical = set(MODELS)
    spellings = {s.strip() for names in MAKE_SPELLINGS.values() for s in names}

    assert {p["make"] for p in published} <= spellings
    assert any(p["make"] not in canonical for p in published)
    assert any(p["mileage"] is None or p["posted_date"] is None for p in published)
    assert any(p["year"] == 2099 for p in published)
    assert any(p["mileage"] is not None and p["mileage"] < 0 for p in published)
    assert any(p["price"] == 1.0 for p in published)
    assert any(shown.get("mileage", "").endswith(" km") for shown in catalogue.display.values())


def test_robots_txt_disallows_the_admin_area_that_index_pages_link_to() -> None:
    with demosite.serve(listings=30) as site:
        robots = requests.get(f"{site.url}robots.txt", timeout=5).text
        page = lxml.html.fromstring(requests.get(site.start_url, timeout=5).content)

    assert "Disallow: /admin/" in robots.splitlines()
    assert any(href.startswith("/admin/") for href in page.xpath("//a/@href"))


def test_index_pages_paginate_to_detail_pages_and_stop_at_the_last_page() -> None:
    with demosite.serve(listings=30) as site:
        first = lxml.html.fromstring(requests.get(site.start_url, timeout=5).content)
        last = lxml.html.fromstring(requests.get(f"{site.url}listings?page=2", timeout=5).content)
        beyond = requests.get(f"{site.url}listings?page=3", timeout=5)

    assert first.cssselect("a.next-page")[0].get("href") == "/listings?page=2"
    assert not last.cssselect("a.next-page")
    assert "/listing/L000001" in [a.get("href") for a in first.cssselect("a.listing-link")]
    assert beyond.status_code == 404


def test_detail_page_shows_the_formatted_published_values() -> None:
    with demosite.serve(listings=5, seed=11) as site:
        shown = site.catalogue.display["L000002"]
        page = lxml.html.fromstring(requests.get(f"{site.url}listing/L000002", timeout=5).content)

    assert page.cssselect("p.price")[0].text_content() == shown["price"]
    assert shown["price"].startswith("$")
    assert page.cssselect("dd.make")[0].text_content() == shown["make"]


def test_every_request_is_logged_with_its_path_and_status() -> None:
    with demosite.serve(listings=5) as site:
        requests.get(f"{site.url}listing/L000001", timeout=5)
        requests.get(f"{site.url}listing/L999999", timeout=5)
        log = list(site.request_log)

    assert log == [("/listing/L000001", 200), ("/listing/L999999", 404)]


def test_flaky_mode_answers_some_requests_429_with_retry_after_or_503() -> None:
    with demosite.serve(listings=60, flaky=0.4, retry_after=1) as site:
        answers = [requests.get(f"{site.url}listing/L{i:06d}", timeout=5) for i in range(1, 61)]

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[429] > 0 and statuses[503] > 0 and statuses[200] > 0
    assert all(a.headers["Retry-After"] == "1" for a in answers if a.status_code == 429)


def test_flaky_answers_are_the_same_for_the_same_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with demosite.serve(listings=40, seed=seed, flaky=0.3) as site:
            paths = [f"/listing/L{i:06d}" for i in range(1, 41)]
            return [requests.get(site.url + p.lstrip("/"), timeout=5).status_code for p in paths]

    first = statuses(5)

    assert first == statuses(5)
    assert set(first) > {200}


def test_a_flaky_path_succeeds_when_retried_a_few_times() -> None:
    with demosite.serve(listings=40, flaky=0.9) as site:
        for i in range(1, 41):
            url = f"{site.url}listing/L{i:06d}"
            answers = [requests.get(url, timeout=5).status_code for _ in range(3)]
            assert 200 in answers


def test_a_broken_path_answers_an_empty_page() -> None:
    with demosite.serve(listings=5, broken=["/listing/L000003"]) as site:
        answer = requests.get(f"{site.url}listing/L000003", timeout=5)

    assert answer.status_code == 200
    assert answer.content == b""


def test_stop_releases_the_port_and_is_idempotent() -> None:
    site = demosite.serve(listings=5)
    url = site.url
    site.stop()
    site.stop()

    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_command_line_serves_and_prints_the_url_and_noise_sigma() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "demosite", "--listings", "30", "--seed", "2", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        url = lines[0].split(" at ")[1].strip()
        status = requests.get(f"{url}listings?page=1", timeout=5).status_code
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert url.startswith("http://127.0.0.1:")
    assert status == 200
    sigma = demosite.Catalogue.generate(listings=30, seed=2).noise_sigma
    assert f"noise sigma: {sigma:.1f}" in lines[2]
