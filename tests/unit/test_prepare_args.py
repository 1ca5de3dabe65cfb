"""The Glue job's argument parsing: Glue's ``--KEY value`` style, Glue's own extras tolerated."""

from __future__ import annotations

import pytest

from glue.prepare import PreparationFailed, parse_args

BASE = [
    "--run_id", "r1",
    "--dataset", "used_cars",
    "--validated_path", "s3://validated/used_cars/",
    "--curated_path", "s3://curated/dataset=used_cars/run_id=r1",
    "--contract_uri", "s3://artifacts/contracts/resolved/used_cars/r1.json",
]  # fmt: skip


def test_glue_extra_arguments_are_tolerated():
    extras = [
        "--JOB_NAME", "mlops-prepare-dev",
        "--job-bookmark-option", "job-bookmark-disable",
        "--enable-metrics", "true",
        "--TempDir=s3://tmp/",
    ]  # fmt: skip

    args = parse_args(extras + BASE)

    assert args.run_id == "r1"
    assert args.curated_path == "s3://curated/dataset=used_cars/run_id=r1/"
    assert args.shares == (0.7, 0.15, 0.15)


def test_split_fractions_come_from_the_arguments():
    args = parse_args([*BASE, "--train_fraction", "0.8", "--validation_fraction=0.1"])

    assert args.shares == pytest.approx((0.8, 0.1, 0.1))


def test_missing_arguments_are_named():
    with pytest.raises(PreparationFailed, match="--contract_uri"):
        parse_args(BASE[:-2])
