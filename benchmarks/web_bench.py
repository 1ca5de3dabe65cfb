"""Latency of POST /predictions through the local HTTP API, next to a direct InvokeEndpoint on
the same SageMaker runtime, measured in the same run: the difference is what the web layer adds.

Three tiers, each timed over the same rows:

- ``invoke_endpoint``: boto3 ``sagemaker-runtime`` straight to the runtime server (baseline);
- ``handler_warm``: the web function's handler called in-process with its template
  environment and warm boto3 clients, as on a warm Lambda container (contract check, cached
  endpoint description, InvokeEndpoint, answer checks): the web code's own cost;
- ``handler``: ``cloud.invoke("WebFunction", event)``: the same plus the local cloud's
  per-invocation plumbing (it forgets cached boto3 clients on every invocation);
- ``http_api``: a real HTTP request to the local HTTP API (event mapping + the tier above).

By default the runtime is the local cloud's real endpoint executor serving a small model
trained here with training/train.py (``--fake-runtime`` uses a canned in-process runtime
instead, to isolate the web layer from model compute). Usage:

    PYTHONPATH=.:layers/shared:training .venv/bin/python benchmarks/web_bench.py [--requests 200]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

ROW = {
    "make": "toyota",
    "model": "corolla",
    "year": 2018,
    "mileage": 42000,
    "fuel": "petrol",
    "transmission": "automatic",
    "engine_size": 1.8,
    "body": "sedan",
}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(calls: dict[str, Callable[[], Any]], requests: int, warmup: int) -> dict[str, list]:
    """Samples per tier, taken round-robin so a load spike on this shared machine hits every
    tier alike instead of skewing whichever happened to run during it."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(requests):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - started) * 1000)
    return samples


def train_model(workdir: Path) -> Path:
    """model.tar.gz of a small used_cars model trained by the project's own training script."""
    import train
    from threadpoolctl import threadpool_limits

    from tests.unit.test_train_fixtures import train_argv, used_cars_raw, used_cars_run

    channels = used_cars_run(workdir / "input", used_cars_raw(400))
    with threadpool_limits(limits=1):
        if train.main(train_argv(channels, workdir / "model", workdir / "out")) != 0:
            raise SystemExit("training the benchmark model failed")
    archive = workdir / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in (workdir / "model").iterdir():
            tar.add(item, arcname=item.name)
    return archive


def deploy(cloud: Any, archive: Path | None, endpoint_name: str) -> None:
    """Model, endpoint config and endpoint tagged like the deploy function tags them."""
    sagemaker = cloud.client("sagemaker")
    model_url = "s3://none/model.tar.gz"
    if archive is not None:
        bucket = cloud.resources["ArtifactsBucket"]
        cloud.client("s3").upload_file(str(archive), bucket, "models/bench/model.tar.gz")
        model_url = f"s3://{bucket}/models/bench/model.tar.gz"
    name = f"{endpoint_name}-v1"
    tags = {"model_package_version": "1", "run_id": "bench", "trained_at": "2026-11-27T08:00:00Z"}
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=f"arn:aws:iam::{cloud.account_id}:role/sagemaker",
        PrimaryContainer={"Image": "sklearn-inference", "ModelDataUrl": model_url},
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=name)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointStatus"]
        if status == "InService":
            return
        if status == "Failed":
            raise SystemExit(f"endpoint {endpoint_name} failed to start")
        time.sleep(0.5)
    raise SystemExit(f"endpoint {endpoint_name} not InService after 180 s")


def fake_runtime(cloud: Any) -> Any:
    from tests.unit.test_web_api import FakeRuntime, echo_prices

    runtime = FakeRuntime(echo_prices)
    cloud.set_service_endpoint("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    return runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--fake-runtime", action="store_true")
    args = parser.parse_args(argv)

    import logging

    import boto3
    import requests

    from functions.web.app import lambda_handler
    from localcloud.cloud import LocalCloud
    from localcloud.runtime import LambdaContext, environment
    from mlops import naming

    logging.disable(logging.WARNING)
    # Latency, not the stage's rate limit: the local HTTP API would throttle past 20 requests/s.
    os.environ["LOCALCLOUD_API_THROTTLING"] = "0"
    executors = [] if args.fake_runtime else ["localcloud.executors.endpoint:EndpointExecutor"]
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp:
        archive = None if args.fake_runtime else train_model(Path(tmp))
        with LocalCloud(executors=executors, publish=False) as cloud:
            fake = fake_runtime(cloud) if args.fake_runtime else None
            try:
                endpoint_name = naming.endpoint_name(
                    cloud.parameters["DatasetName"], cloud.parameters["Stage"]
                )
                deploy(cloud, archive, endpoint_name)
                # handler_warm sets the process environment outside the cloud's invocation
                # lock: let the deploy's own events finish first so nothing runs beside it.
                cloud.wait_quiescent(timeout=120)
                runtime_url = cloud.subprocess_env()["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]
                runtime = boto3.client(
                    "sagemaker-runtime",
                    endpoint_url=runtime_url,
                    region_name=cloud.region,
                    aws_access_key_id="bench",
                    aws_secret_access_key="bench",
                )
                body = json.dumps([ROW]).encode()
                event = json.loads((ROOT / "events" / "http_post_predictions.json").read_text())
                event["body"] = json.dumps(ROW)
                url = f"{cloud.http_api_url}{cloud.parameters['Stage']}/predictions"
                session = requests.Session()

                def direct() -> None:
                    answer = runtime.invoke_endpoint(
                        EndpointName=endpoint_name, ContentType="application/json", Body=body
                    )
                    json.loads(answer["Body"].read())

                def handler() -> None:
                    result = cloud.invoke("WebFunction", event)
                    assert result["statusCode"] == 200, result

                spec = cloud.function("WebFunction")
                context = LambdaContext(spec, cloud.region)
                web_env = cloud.function_environment(spec)

                def handler_warm() -> None:
                    # Metrics go to stdout as on Lambda; kept out of the printed table.
                    with environment(web_env, set()), redirect_stdout(io.StringIO()):
                        result = lambda_handler(event, context)
                    assert result["statusCode"] == 200, result

                def http() -> None:
                    response = session.post(url, json=ROW, timeout=30)
                    assert response.status_code == 200, response.text

                tiers = timed(
                    {
                        "invoke_endpoint": direct,
                        "handler_warm": handler_warm,
                        "handler": handler,
                        "http_api": http,
                    },
                    args.requests,
                    args.warmup,
                )
            finally:
                if fake is not None:
                    fake.stop()

    kind = "fake in-process runtime" if args.fake_runtime else "endpoint executor (real model)"
    print(f"POST /predictions, 1 row, {args.requests} requests per tier, runtime: {kind}")
    base50 = statistics.median(tiers["invoke_endpoint"])
    base99 = percentile(tiers["invoke_endpoint"], 99)
    print(f"{'tier':<16}{'p50 ms':>9}{'p99 ms':>9}{'x p50':>8}{'+p50 ms':>9}{'+p99 ms':>9}")
    for name, samples in tiers.items():
        p50, p99 = statistics.median(samples), percentile(samples, 99)
        print(
            f"{name:<16}{p50:>9.2f}{p99:>9.2f}{p50 / base50:>8.2f}"
            f"{p50 - base50:>9.2f}{p99 - base99:>9.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
