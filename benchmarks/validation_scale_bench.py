"""Validation at scale (issue 12): peak memory and rows/s of the validate function on big CSVs.

Target: for objects of 100 MB, 500 MB and 2 GB, the validate function's peak memory stays
flat (largest over smallest within 1.5x) and its checks stay at least 10x as fast as pandera
on the same checks (check_frame's CPU time on each chunk as the function read it, against
pandera on the same text cells). End-to-end rows/s (reading, checking, writing) is printed
against pandera's in-memory figure too, which no read-check-write path reaches 10x of.

What it does, per size (``--sizes``, in MB of 10**6 bytes):

1. Generates a used_cars CSV of that size (the columns and messy spellings of
   validation_bench.generate, unique eight-digit listing ids across the whole file, 1% blank
   mileage, ~2% invalid rows of five kinds, one fault each), streamed to disk a block of rows
   at a time and deterministic from ``--seed``. Files are cached in ``--work-dir`` (outside
   the repository) with their row and invalid-row counts, and deleted after the run unless
   ``--keep-files``; a smaller file is a prefix of a larger one.
2. Runs moto as a server in a separate process, so the objects it holds are not counted in
   the measured process. moto serves a ranged GET by reading the whole object and slicing it;
   the server is patched so a range costs its own length, as on S3 (unpatched, each 8 MiB
   range of a 2 GB object copies 2 GB inside moto).
3. Provisions what the validate function uses (raw, validated, quarantine and artifacts
   buckets, the ledger and idempotency tables with template.yaml's key schemas, the Glue
   database) and uploads the contract: the bundled used_cars one with ``^L[0-9]{8}$`` ids,
   since six digits cannot tell 17 million rows apart.
4. Uploads the CSV to the raw bucket (multipart ``upload_file``) and, in a fresh
   subprocess, calls the validate function's handler (``functions/validate/app.py``: event
   parsing, idempotency, ``validate_object``, ranged GETs, chunked reads and checks, parquet
   writes and Glue partitions through awswrangler, the report and the ledger). The
   subprocess imports everything and creates its AWS clients first, then takes its RSS as
   the baseline; the peak is the kernel's high-water mark since then (``VmHWM`` after
   ``clear_refs``), checked against RSS sampled every 5 ms. The result must reconcile:
   rows in = valid + quarantined = the rows generated, quarantined = the invalid rows
   generated, and the parquet files in the zones hold as many rows.

The function runs with ``VALIDATION_CHUNK_BYTES`` from ``--chunk-bytes`` (unset by default:
the product's default) and a ``MAX_DECOMPRESSED_BYTES`` above the largest size.
``VALIDATION_GLUE_MIN_BYTES`` is unset: in production objects over that threshold go to the
Glue job; this measures the function's own path at these sizes.

Baseline: pandera (validation_bench.pandera_validate, the same rules) in memory on a
1,000,000-row frame of the same rows (pandera on 2 GB would not fit), twice: typed, as
validation_bench hands it over, and with every cell text, as the function's CSV reader hands
it to ``check_frame``. ``check_frame`` on either frame is printed beside it, to tell the
checks from the rest. Neither baseline reads or writes anything, so both favour pandera.
With ``--repeats`` above 1, pandera and the sizes take turns and the best run of each counts.

rows/s is given by wall time and by the measured process's CPU time (all its threads). Wall
time also counts moto (another process on the same cores, which a real S3 is not) and
other work on a shared machine; CPU time counts neither.

    .venv/bin/python benchmarks/validation_scale_bench.py [--sizes 100 500 2000]
        [--chunk-bytes 33554432] [--work-dir /tmp/validation-scale-bench] [--seed 7]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, the repository root is not on the path: the validate function's handler
# (functions/validate/app.py) and validation_bench are imported from it.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RAW = "mlops-scale-raw"
VALIDATED = "mlops-scale-validated"
QUARANTINE = "mlops-scale-quarantine"
ARTIFACTS = "mlops-scale-artifacts"
LEDGER = "mlops-scale-ledger"
IDEMPOTENCY = "mlops-scale-idempotency"
DATABASE = "mlops_scale"
DATASET = "used_cars"
MB = 10**6
PANDERA_ROWS = 1_000_000
MEMORY_TARGET = 1.5
SPEED_TARGET = 10.0
# Rows drawn at a time: a block's table and its CSV text are all the generator holds.
BLOCK_ROWS = 250_000
# Bumped when the generated rows change, so a stale cached file is not reused.
GENERATOR_VERSION = 1
ID_DIGITS = 8
INVALID_SHARE = 0.02
BLANK_MILEAGE_SHARE = 0.01
# Makes and models as validation_bench writes them: messy spellings the contract's aliases
# normalise; "Tesla" is a make the contract does not allow (one of the invalid kinds).
SPELLINGS = ["Toyota", "TOYOTA", "toyota", "Ford", "FORD", "Volkswagen", "VW", "V.W."]
SPELLINGS += ["Volkswagen ", "BMW", "Bmw", "Mercedes-Benz", "Mercedes", "Mercedes Benz"]
SPELLINGS += ["Merc", "Kia", "KIA", "Tesla"]
MODELS = ["corolla", "golf", "focus", "3 series", "c-class", "ceed", "Yaris", "Polo"]
FUELS = ["petrol", "diesel", "hybrid", "electric", "steam"]
TRANSMISSIONS = ["manual", "automatic"]
BODIES = ["sedan", "hatchback", "suv", "wagon"]
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- the data


@dataclass(frozen=True)
class Generated:
    """A cached CSV: where, its size, its rows and how many of them are invalid."""

    path: Path
    bytes: int
    rows: int
    invalid: int


def block(index: int, seed: int) -> tuple[pa.Table, np.ndarray]:
    """Rows ``index * BLOCK_ROWS`` on, and which of them are invalid (one fault each)."""
    rng = np.random.default_rng([seed, index])
    rows = BLOCK_ROWS
    ids = pa.array(np.arange(index * rows, (index + 1) * rows)).cast(pa.string())
    make = rng.integers(0, len(SPELLINGS) - 1, rows)
    year = rng.integers(1995, 2027, rows)
    mileage = rng.integers(0, 250_000, rows)
    fuel = rng.integers(0, 4, rows)
    price = np.round(rng.uniform(1500, 60000, rows), 0)
    blank = rng.random(rows) < BLANK_MILEAGE_SHARE
    invalid = rng.random(rows) < INVALID_SHARE
    bad = np.flatnonzero(invalid)
    kind = rng.integers(0, 5, len(bad))
    year[bad[kind == 0]] = 2099
    price[bad[kind == 1]] = 1.0
    fuel[bad[kind == 2]] = FUELS.index("steam")
    mileage[bad[kind == 3]] = -5000
    blank[bad[kind == 3]] = False
    make[bad[kind == 4]] = SPELLINGS.index("Tesla")
    posted = np.datetime64("2026-08-01") + rng.integers(0, 118, rows)
    table = pa.table(
        {
            "listing_id": pc.binary_join_element_wise("L", pc.utf8_lpad(ids, ID_DIGITS, "0"), ""),
            "make": pa.array(SPELLINGS).take(pa.array(make)),
            "model": pa.array(MODELS).take(pa.array(rng.integers(0, len(MODELS), rows))),
            "year": pa.array(year),
            "mileage": pa.array(mileage, mask=blank),
            "fuel": pa.array(FUELS).take(pa.array(fuel)),
            "transmission": pa.array(TRANSMISSIONS).take(pa.array(rng.integers(0, 2, rows))),
            "engine_size": pa.array(np.round(rng.uniform(1.0, 3.0, rows), 1)),
            "body": pa.array(BODIES).take(pa.array(rng.integers(0, len(BODIES), rows))),
            "posted_date": pa.array(posted).cast(pa.date32()).cast(pa.string()),
            "price": pa.array(price),
            "source_url": pc.binary_join_element_wise("http://127.0.0.1/l/", ids, ""),
            "fetched_at": pa.array(["2026-11-27T08:30:00Z"] * rows),
        }
    )
    return table, invalid


def csv_bytes(table: pa.Table, header: bool) -> bytes:
    # No value holds a comma, quote or newline: written unquoted, as a user's export would be
    # (arrow would quote the header's names, hence the header by hand).
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    names = (",".join(table.column_names) + "\n").encode() if header else b""
    return names + sink.getvalue().to_pybytes()


def generate_csv(path: Path, target_bytes: int, seed: int) -> Generated:
    """Write about ``target_bytes`` of rows to ``path``, a block at a time; cut at a line end."""
    written = rows = invalid = 0
    partial = path.with_suffix(".part")
    with open(partial, "wb") as out:
        index = 0
        while written < target_bytes:
            table, bad = block(index, seed)
            data = csv_bytes(table, header=index == 0)
            header_lines = 1 if index == 0 else 0
            last = written + len(data) > target_bytes
            if last:
                data = data[: data.rfind(b"\n", 0, target_bytes - written) + 1]
            kept = data.count(b"\n") - header_lines
            out.write(data)
            written += len(data)
            rows += kept
            invalid += int(bad[:kept].sum())
            index += 1
            if last:
                break
    partial.rename(path)
    return Generated(path, written, rows, invalid)


def cached_csv(work_dir: Path, size_mb: int, seed: int) -> Generated:
    """The CSV of ``size_mb`` MB for ``seed``, generated unless already in ``work_dir``."""
    stem = f"used_cars-{size_mb}MB-seed{seed}-v{GENERATOR_VERSION}"
    path, meta = work_dir / f"{stem}.csv", work_dir / f"{stem}.json"
    if path.exists() and meta.exists():
        counts = json.loads(meta.read_text())
        if counts["bytes"] == path.stat().st_size:
            return Generated(path, counts["bytes"], counts["rows"], counts["invalid"])
    start = time.perf_counter()
    generated = generate_csv(path, size_mb * MB, seed)
    meta.write_text(json.dumps({k: v for k, v in asdict(generated).items() if k != "path"}))
    print(
        f"generated {path.name}: {generated.rows:,} rows, {generated.invalid:,} invalid, "
        f"{time.perf_counter() - start:.0f} s",
        flush=True,
    )
    return generated


def pandera_frame(rows: int, seed: int) -> Any:
    """The first ``rows`` generated rows as a typed frame (what validation_bench hands pandera)."""
    blocks = [block(i, seed)[0] for i in range(-(-rows // BLOCK_ROWS))]
    return pa.concat_tables(blocks).slice(0, rows).to_pandas()


def as_read(frame: Any) -> Any:
    """``frame`` as the validate function gets it from a CSV: every cell text, blank a null."""
    from mlops.validation.readers import read_object

    table = pa.Table.from_pandas(frame, preserve_index=False)
    body = csv_bytes(table, header=True)
    return read_object(body, "rows.csv", max_bytes=2 * len(body)).frame


def contract_text() -> str:
    """The bundled used_cars contract with eight-digit listing ids."""
    from mlops.contract import BUNDLED, Contract

    text = (BUNDLED / f"{DATASET}.yaml").read_text(encoding="utf-8")
    widened, count = re.subn(
        r'pattern: "\^L\[0-9\]\{6\}\$"', f'pattern: "^L[0-9]{{{ID_DIGITS}}}$"', text
    )
    if count != 1:
        raise RuntimeError("the bundled contract's listing_id pattern has changed")
    Contract.from_yaml(widened)  # still a valid contract
    return widened


# ---------------------------------------------------------------- moto in its own process


def serve_moto() -> None:
    """Run moto's server on a free port (printed on stdout) until stdin closes."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    ranged = threading.local()
    whole_value = FakeKey.value

    class RangeOfValue:
        """A stored object that reads only the slice the range asks for."""

        def __init__(self, key: FakeKey) -> None:
            self._key = key

        def __len__(self) -> int:
            return int(self._key.size)

        def __getitem__(self, part: slice) -> bytes:
            with self._key.lock:
                self._key._value_buffer.seek(part.start)
                return self._key._value_buffer.read(part.stop - part.start)

    def value(key: FakeKey) -> Any:
        # Only get_object's own read of a ranged GET is served lazily; moto's
        # _handle_range_header then slices it (a malformed range would fail, ours are not).
        return RangeOfValue(key) if getattr(ranged, "on", False) else whole_value.fget(key)

    get_object = S3Response.get_object

    def get_object_ranged(self: S3Response) -> Any:
        ranged.on = bool(self.headers.get("range"))
        try:
            return get_object(self)
        finally:
            ranged.on = False

    FakeKey.value = property(value, whole_value.fset)  # type: ignore[method-assign,assignment]
    S3Response.get_object = get_object_ranged  # type: ignore[method-assign]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # the parent closes it (or exits)
    server.stop()


@contextlib.contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """A moto server in a child process (its request log in ``log``); its endpoint URL."""
    with open(log, "a") as requests:
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve-moto"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=requests,
            text=True,
        )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def aws_env(endpoint: str, chunk_bytes: int | None, max_bytes: int) -> dict[str, str]:
    """What the validate function reads from its environment, pointed at the moto server.

    ``chunk_bytes`` None leaves ``VALIDATION_CHUNK_BYTES`` unset: the settings' default.
    """
    chunk = {} if chunk_bytes is None else {"VALIDATION_CHUNK_BYTES": str(chunk_bytes)}
    return chunk | {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "RAW_BUCKET": RAW,
        "VALIDATED_BUCKET": VALIDATED,
        "QUARANTINE_BUCKET": QUARANTINE,
        "ARTIFACTS_BUCKET": ARTIFACTS,
        "LEDGER_TABLE": LEDGER,
        "IDEMPOTENCY_TABLE": IDEMPOTENCY,
        "GLUE_DATABASE": DATABASE,
        "MAX_DECOMPRESSED_BYTES": str(max_bytes),
        "POWERTOOLS_SERVICE_NAME": "validate",
        "POWERTOOLS_METRICS_NAMESPACE": "ValidationScaleBench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        # Its JSON logs would fill the child's output; warnings and errors still show.
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


def provision() -> None:
    """The validate function's resources, as template.yaml declares the tables' keys."""
    import boto3
    from samtranslator.yaml_helper import yaml_parse

    from mlops.contract import contract_key

    s3 = boto3.client("s3")
    for bucket in (RAW, VALIDATED, QUARANTINE, ARTIFACTS):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=ARTIFACTS, Key=contract_key(DATASET), Body=contract_text().encode())
    resources = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]
    for logical_id, name in (("RunLedgerTable", LEDGER), ("IdempotencyTable", IDEMPOTENCY)):
        props = resources[logical_id]["Properties"]
        boto3.client("dynamodb").create_table(
            TableName=name,
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode=props["BillingMode"],
        )
    boto3.client("glue").create_database(DatabaseInput={"Name": DATABASE})


def upload(generated: Generated, size_mb: int) -> dict[str, Any]:
    """Put the CSV in the raw zone; the "Object Created" event S3 would send for it."""
    import boto3
    from boto3.s3.transfer import TransferConfig

    s3 = boto3.client("s3")
    key = f"{DATASET}/scale-bench/used_cars-{size_mb}MB.csv"
    config = TransferConfig(multipart_chunksize=64 * 1024**2, max_concurrency=2)
    s3.upload_file(str(generated.path), RAW, key, Config=config)
    head = s3.head_object(Bucket=RAW, Key=key)
    event = json.loads((ROOT / "events" / "s3_object_created.json").read_text())
    event = copy.deepcopy(event)
    event["time"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    event["resources"] = [f"arn:aws:s3:::{RAW}"]
    event["detail"]["bucket"]["name"] = RAW
    event["detail"]["object"].update(
        key=key,
        size=int(head["ContentLength"]),
        etag=head["ETag"].strip('"'),
    )
    event["detail"]["object"]["version-id"] = head["VersionId"]
    return event


def empty(bucket: str) -> None:
    """Delete every object version in ``bucket``: moto keeps them in its memory."""
    import boto3

    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        items = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if items:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": items, "Quiet": True})


def parquet_rows(bucket: str, prefix: str) -> int:
    """Rows in the parquet files under ``prefix``, from their footers."""
    import boto3
    import pyarrow.parquet as pq

    s3 = boto3.client("s3")
    rows = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith(".parquet"):
                continue
            size = item["Size"]
            tail = s3.get_object(Bucket=bucket, Key=item["Key"], Range=f"bytes={size - 8}-")
            footer_length = int.from_bytes(tail["Body"].read()[:4], "little")
            first = size - 8 - footer_length
            footer = s3.get_object(Bucket=bucket, Key=item["Key"], Range=f"bytes={first}-")
            rows += pq.read_metadata(pa.BufferReader(footer["Body"].read())).num_rows
    return rows


# ---------------------------------------------------------------- the measured process


class LambdaContext:
    """The attributes of the Lambda context that Powertools and the handler read."""

    function_name = "validate"
    function_version = "$LATEST"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:validate"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/validate"
    log_stream_name = "scale-bench"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def _high_water_mark() -> int:
    """Peak RSS of this process (since the last ``_reset_high_water_mark``), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # 5: reset the peak RSS to the current RSS (Linux 4.0+)
        return True
    except OSError:
        return False


def measure(event: dict[str, Any], profile: Path | None) -> dict[str, Any]:
    """Run the validate function's handler on ``event``; its peak RSS growth, times, result."""
    import awswrangler as wr
    import pandas  # noqa: F401  (imported before the baseline, as a warm function has it)
    import pyarrow.parquet  # noqa: F401

    import mlops.validation.checks as checks
    from functions.validate import app
    from mlops.clients import client

    # The checks' own time, chunk by chunk: what pandera is compared with on the same checks
    # (validation looks check_frame up on the module each time it checks a chunk).
    checking = {"cpu_s": 0.0, "rows": 0}
    check_frame = checks.check_frame

    def timed_check(frame: Any, *args: Any, **kwargs: Any) -> Any:
        start_cpu = time.process_time()
        result = check_frame(frame, *args, **kwargs)
        checking["cpu_s"] += time.process_time() - start_cpu
        checking["rows"] += len(frame)
        return result

    checks.check_frame = timed_check

    # A warm function's clients exist already: created here, they are not the object's cost.
    obj = event["detail"]["object"]
    client("s3").head_object(Bucket=RAW, Key=obj["key"])
    client("dynamodb").describe_table(TableName=LEDGER)
    client("glue").get_database(Name=DATABASE)
    client("events").list_rules()
    wr.s3.does_object_exist(f"s3://{RAW}/{obj['key']}")
    gc.collect()
    baseline = _rss()
    exact = _reset_high_water_mark()
    peak_sampled = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_sampled
        while not done.wait(0.005):
            peak_sampled = max(peak_sampled, _rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start, start_cpu = time.perf_counter(), time.process_time()
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(app.lambda_handler, event, LambdaContext())
        profiler.dump_stats(profile)
    else:
        result = app.lambda_handler(event, LambdaContext())
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    done.set()
    sampler.join()
    peak_sampled = max(peak_sampled, _rss())
    peak = _high_water_mark() if exact else peak_sampled
    return {
        "baseline_mb": baseline / 2**20,
        "peak_growth_mb": (max(peak, peak_sampled) - baseline) / 2**20,
        "sampled_growth_mb": (peak_sampled - baseline) / 2**20,
        "peak_exact": exact,
        "wall_s": wall,
        "cpu_s": cpu,
        "checks_cpu_s": checking["cpu_s"],
        "checks_rows": checking["rows"],
        "result": result,
    }


def run_measured(
    event: dict[str, Any], env: dict[str, str], work_dir: Path, profile: bool
) -> dict[str, Any]:
    """``measure`` in a fresh process (its output is in ``work_dir``/measure.log)."""
    spec = work_dir / "measure-event.json"
    spec.write_text(json.dumps(event))
    out = work_dir / "measure-result.json"
    command = [sys.executable, __file__, "--measure", str(spec), "--result", str(out)]
    if profile:
        command += ["--profile-out", str(work_dir / "measure.prof")]
    with open(work_dir / "measure.log", "a") as log:
        subprocess.run(command, check=True, env=os.environ | env, stdout=log, stderr=log)
    return json.loads(out.read_text())


# ---------------------------------------------------------------- the baseline


def best_of(timings: list[tuple[float, float]]) -> tuple[float, float]:
    return min(t[0] for t in timings), min(t[1] for t in timings)


def timed(fn: Any, *args: Any) -> tuple[float, float, Any]:
    gc.collect()
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - start, time.process_time() - start_cpu, result


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000], help="MB")
    parser.add_argument(
        "--chunk-bytes",
        type=int,
        help="VALIDATION_CHUNK_BYTES for the function (default: unset, the product's default)",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "validation-scale-bench"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=1, help="runs per size and of pandera")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the validation (prints the top calls)"
    )
    parser.add_argument(
        "--keep-files", action="store_true", help="keep the generated CSVs in --work-dir"
    )
    parser.add_argument("--serve-moto", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_moto:
        serve_moto()
        return
    if args.measure:
        figures = measure(json.loads(args.measure.read_text()), args.profile_out)
        args.result.write_text(json.dumps(figures, default=str))
        return

    from benchmarks.validation_bench import pandera_validate
    from mlops.contract import Contract
    from mlops.settings import Settings
    from mlops.validation.checks import check_frame

    sizes = sorted(set(args.sizes))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    files = {size: cached_csv(args.work_dir, size, args.seed) for size in sizes}
    contract = Contract.from_yaml(contract_text())
    typed = pandera_frame(PANDERA_ROWS, args.seed)
    # Two frames for the in-memory figures: typed (as validation_bench hands them over) and
    # as read from CSV (text cells: the work check_frame does inside the function).
    frames = {"typed": typed, "text": as_read(typed)}
    del typed
    check_frame(frames["text"].head(1000), contract)  # lazy imports and caches, both sides
    pandera_validate(frames["text"].head(1000), contract)

    max_bytes = max(2 * max(sizes) * MB, 256 * 1024**2)
    chunk_bytes = args.chunk_bytes or Settings().validation_chunk_bytes
    runs: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
    pandera: dict[str, list[tuple[float, float]]] = {kind: [] for kind in frames}
    ours_in_memory: dict[str, list[tuple[float, float]]] = {kind: [] for kind in frames}
    invalid_found: dict[str, tuple[int, int]] = {}
    reconciled: dict[int, str] = {}
    with moto_server(args.work_dir / "moto.log") as endpoint:
        env = aws_env(endpoint, args.chunk_bytes, max_bytes)
        os.environ.update(env)
        provision()
        for _ in range(args.repeats):
            # Taking turns: a neighbour's burst of work falls on either side alike.
            for kind, frame in frames.items():
                wall, cpu, (_, theirs_invalid) = timed(pandera_validate, frame, contract)
                pandera[kind].append((wall, cpu))
                wall, cpu, result = timed(check_frame, frame, contract)
                ours_in_memory[kind].append((wall, cpu))
                invalid_found[kind] = (result.rows_quarantined, theirs_invalid)
            for size in sizes:
                generated = files[size]
                event = upload(generated, size)
                figures = run_measured(event, env, args.work_dir, args.profile)
                runs[size].append(figures)
                figures["chunks"] = report(figures["result"]).get("chunks", "?")
                reconciled[size] = reconcile(generated, figures["result"])
                empty(RAW)
                empty(VALIDATED)
                empty(QUARANTINE)
                if args.profile:
                    print_profile(args.work_dir / "measure.prof", size)
    if not args.keep_files:
        for generated in files.values():
            generated.path.unlink(missing_ok=True)
            generated.path.with_suffix(".json").unlink(missing_ok=True)

    baseline: dict[str, tuple[float, float]] = {}
    for kind in frames:
        pandera_wall, pandera_cpu = best_of(pandera[kind])
        in_memory_wall, in_memory_cpu = best_of(ours_in_memory[kind])
        baseline[kind] = (PANDERA_ROWS / pandera_wall, PANDERA_ROWS / pandera_cpu)
        ours_invalid, theirs_invalid = invalid_found[kind]
        print(
            f"in memory, {PANDERA_ROWS:,} rows, {kind} cells: pandera "
            f"{baseline[kind][0]:,.0f} rows/s wall, {baseline[kind][1]:,.0f} CPU; check_frame "
            f"{PANDERA_ROWS / in_memory_wall:,.0f} wall, {PANDERA_ROWS / in_memory_cpu:,.0f} CPU "
            f"({theirs_invalid:,} / {ours_invalid:,} invalid)"
        )
    print(
        f"validate function end to end (S3 read, checks, parquet + Glue writes), chunks of "
        f"{chunk_bytes / 2**20:g} MiB{'' if args.chunk_bytes else ' (the default)'}:\n"
    )
    print(
        f"{'size':>7} {'rows':>11} {'chunks':>6} {'base MB':>8} {'peak+ MB':>9} {'wall s':>7} "
        f"{'CPU s':>7} {'rows/s wall':>12} {'rows/s CPU':>11} {'x typed':>10} {'x text':>10}"
        "  reconciled"
    )
    peaks: dict[int, float] = {}
    # Per size and pandera frame kind: our rows/s over pandera's, by wall and by CPU time.
    speedups: dict[int, dict[str, tuple[float, float]]] = {}
    for size in sizes:
        best = min(runs[size], key=lambda f: f["wall_s"])
        peak = max(f["peak_growth_mb"] for f in runs[size])
        wall = best["wall_s"]
        cpu = min(f["cpu_s"] for f in runs[size])
        rows = files[size].rows
        peaks[size] = peak
        speedups[size] = {
            kind: ((rows / wall) / theirs_wall, (rows / cpu) / theirs_cpu)
            for kind, (theirs_wall, theirs_cpu) in baseline.items()
        }
        ratios = " ".join(
            f"{by_wall:>5.1f}/{by_cpu:<4.1f}" for by_wall, by_cpu in speedups[size].values()
        )
        print(
            f"{size:>5}MB {rows:>11,} {best['chunks']!s:>6} {best['baseline_mb']:>8.0f} "
            f"{peak:>9.0f} {wall:>7.1f} {cpu:>7.1f} {rows / wall:>12,.0f} {rows / cpu:>11,.0f} "
            f"{ratios}  {reconciled[size]}"
        )
    print("base MB: RSS after imports and clients; peak+ MB: peak RSS growth over it")
    print("x typed, x text: our rows/s over pandera's on typed / text cells, by wall / by CPU\n")
    # The acceptance's comparison: the same checks on the same rows. check_frame's CPU time on
    # each chunk as the function read it (text cells), against pandera on text cells.
    pandera_text_cpu = baseline["text"][1]
    print("the checks alone (check_frame on each chunk, CPU) against pandera on text cells:")
    for size in sizes:
        best = min(runs[size], key=lambda f: f["checks_cpu_s"])
        rate = best["checks_rows"] / best["checks_cpu_s"]
        factor = rate / pandera_text_cpu
        print(
            f"{size:>5}MB checks {rate:,.0f} rows/s CPU = {factor:.1f}x pandera's "
            f"{pandera_text_cpu:,.0f} (target >= {SPEED_TARGET:g}x): "
            f"{'met' if factor >= SPEED_TARGET else 'NOT met'}"
        )
    print()
    smallest, largest = sizes[0], sizes[-1]
    ratio = peaks[largest] / peaks[smallest]
    verdict = "met" if ratio <= MEMORY_TARGET else "NOT met"
    print(
        f"peak memory {largest} MB / {smallest} MB: {peaks[largest]:.0f} / {peaks[smallest]:.0f}"
        f" MB = {ratio:.2f}x (target <= {MEMORY_TARGET}x): {verdict}"
    )
    for size in sizes:
        for kind, (by_wall, by_cpu) in speedups[size].items():
            verdict = "met" if min(by_wall, by_cpu) >= SPEED_TARGET else "NOT met"
            print(
                f"throughput {size} MB vs pandera on {kind} cells: {by_wall:.1f}x by wall, "
                f"{by_cpu:.1f}x by CPU (target >= {SPEED_TARGET:g}x): {verdict}"
            )


def reconcile(generated: Generated, result: dict[str, Any]) -> str:
    """ "yes", or what does not add up between the rows generated, the result and the zones."""
    problems = []
    if result["outcome"] != "validated":
        problems.append(f"outcome {result['outcome']}: {result.get('reason')}")
    rows_in, valid, quarantined = (
        result["rows_in"],
        result["rows_valid"],
        result["rows_quarantined"],
    )
    if rows_in != valid + quarantined:
        problems.append(f"rows_in {rows_in:,} != {valid:,} + {quarantined:,}")
    if rows_in != generated.rows:
        problems.append(f"rows_in {rows_in:,} != {generated.rows:,} generated")
    if quarantined != generated.invalid:
        problems.append(f"quarantined {quarantined:,} != {generated.invalid:,} invalid")
    in_zone = parquet_rows(VALIDATED, f"{DATASET}/"), parquet_rows(QUARANTINE, f"rows/{DATASET}/")
    if in_zone != (valid, quarantined):
        problems.append(f"zones hold {in_zone[0]:,} valid, {in_zone[1]:,} quarantined rows")
    return "; ".join(problems) or "yes"


def report(result: dict[str, Any]) -> dict[str, Any]:
    """The validation report the function wrote for ``result``."""
    import boto3

    body = boto3.client("s3").get_object(Bucket=QUARANTINE, Key=result["report_key"])["Body"]
    return json.loads(body.read())


def print_profile(path: Path, size: int) -> None:
    import pstats

    print(f"\n-- cProfile of the {size} MB validation (cumulative):")
    pstats.Stats(str(path)).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
