"""``python -m demosite``: serve the demo site until Ctrl-C."""

from __future__ import annotations

import argparse
import threading

from demosite.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demosite", description=__doc__)
    parser.add_argument("--listings", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--flaky", type=float, default=0.0, help="share of 429/503 answers")
    parser.add_argument("--day", type=int, default=1, help="scenario day to serve first")
    args = parser.parse_args(argv)
    site = serve(args.listings, args.seed, args.flaky, args.host, args.port, day=args.day)
    print(f"Demo Cars serving {args.listings} listings at {site.url}", flush=True)
    print(f"crawl start: {site.start_url}", flush=True)
    print(f"noise sigma: {site.catalogue.noise_sigma:.1f} USD (best reachable RMSE)", flush=True)
    assert site.day is not None  # serve() always serves a scenario
    print(site.day.describe(), flush=True)
    if site.admin_enabled and site.day.number < site.day.plan.days:
        print(f"next day: curl -X POST '{site.url}admin/day?day={site.day.number + 1}'", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        site.stop()


if __name__ == "__main__":
    main()
