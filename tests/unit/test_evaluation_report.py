"""The HTML evaluation report: a metrics table and well-formed inline SVG plots."""

from __future__ import annotations

import re

from lxml import etree

from mlops.evaluation import Evaluation, decide
from mlops.evaluation.report import render_html


def svgs(page: str) -> list[etree._Element]:
    return [etree.fromstring(svg.encode()) for svg in re.findall(r"<svg.*?</svg>", page, re.S)]


def test_a_classification_report_draws_the_confusion_matrix() -> None:
    # given a three-class evaluation
    labels = ["cheap", "fair", "pricey"]
    ev = Evaluation.model_validate(
        {
            "task": "classification",
            "metric": "f1_macro",
            "candidate": {"f1_macro": 0.8, "accuracy": 0.85},
            "baseline": {"f1_macro": 0.2, "accuracy": 0.4},
            "confusion_matrix": {"labels": labels, "matrix": [[5, 1, 0], [1, 6, 1], [0, 2, 7]]},
        }
    )
    # when rendered
    page = render_html(ev, decide(ev, "auto"), {"run_id": "r1", "dataset": "prices"})
    # then one cell per pair of classes, each class labelled
    [matrix] = svgs(page)
    cells = [r for r in matrix.iter("{http://www.w3.org/2000/svg}rect")]
    assert len(cells) == len(labels) ** 2
    assert all(label in page for label in labels)


def test_a_regression_report_tabulates_candidate_baseline_and_champion() -> None:
    ev = Evaluation.model_validate(
        {
            "metric": "rmse",
            "candidate": {"rmse": 1500.0, "r2": 0.9},
            "baseline": {"rmse": 9000.0, "r2": 0.0},
            "champion": {"rmse": 1700.0, "r2": 0.88},
            "sample": {"y_true": [1000, 2000, 3000], "y_pred": [1100, 1900, 3300]},
            "feature_importance": {"year": 0.6, "mileage": 0.4},
        }
    )
    page = render_html(ev, decide(ev, "auto"), {"run_id": "r1"})
    row = re.search(r"<tr[^>]*><td>rmse</td>(.*?)</tr>", page).group(1)
    assert re.findall(r"<td>([^<]*)</td>", row) == ["1,500", "9,000", "1,700"]
    plots = svgs(page)
    assert [p.findtext("{http://www.w3.org/2000/svg}title") for p in plots] == [
        "Predicted vs actual",
        "Residuals",
        "Feature importance",
    ]
    circles = plots[0].findall("{http://www.w3.org/2000/svg}circle")
    assert len(circles) == len(ev.sample["y_true"])
