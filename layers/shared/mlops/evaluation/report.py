"""The evaluation report a person reads: metrics table plus plots as inline SVG.

SVG is drawn here by hand because the Lambda ships neither matplotlib nor numpy.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Any

from mlops.evaluation.decision import Decision, Evaluation, Status

_W, _H, _PAD = 420, 300, 44
_COLOURS = {Status.APPROVED: "#1a7f37", Status.PENDING: "#9a6700", Status.REJECTED: "#cf222e"}
# Enough points to see the shape; more only makes the page heavy.
_MAX_POINTS = 1500
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328;max-width:1000px}
.decision{display:inline-block;padding:.3rem .8rem;border-radius:1rem;color:#fff}
table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left}
figure{display:inline-block;margin:0 1rem 1rem 0;vertical-align:top}
figcaption{font-weight:600}
"""


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _el(tag: str, text: str = "", **attrs: Any) -> str:
    """One SVG element; ``stroke_dasharray=`` becomes ``stroke-dasharray=``."""
    rendered = " ".join(
        f'{k.rstrip("_").replace("_", "-")}="{html.escape(str(v))}"' for k, v in attrs.items()
    )
    return f"<{tag} {rendered}>{html.escape(text)}</{tag}>" if text else f"<{tag} {rendered}/>"


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img"><title>{html.escape(title)}</title>'
    )
    return head + "".join(body) + "</svg>"


def _scale(lo: float, hi: float, out_lo: float, out_hi: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    return lambda v: round(out_lo + (v - lo) / span * (out_hi - out_lo), 1)


def _frame(x_label: str, y_label: str, box: tuple[float, float, float, float]) -> list[str]:
    lo_x, hi_x, lo_y, hi_y = box
    mid = (_H - _PAD) / 2
    return [
        _el(
            "rect",
            x=_PAD,
            y=10,
            width=_W - _PAD - 10,
            height=_H - _PAD - 10,
            fill="#fafafa",
            stroke="#999",
        ),
        _el("text", x_label, x=_W / 2, y=_H - 6, text_anchor="middle", font_size=12),
        _el(
            "text",
            y_label,
            x=12,
            y=mid,
            text_anchor="middle",
            font_size=12,
            transform=f"rotate(-90 12 {mid})",
        ),
        _el("text", _fmt(lo_x), x=_PAD, y=_H - _PAD + 14, font_size=10),
        _el("text", _fmt(hi_x), x=_W - 10, y=_H - _PAD + 14, font_size=10, text_anchor="end"),
        _el("text", _fmt(lo_y), x=_PAD - 3, y=_H - _PAD, font_size=10, text_anchor="end"),
        _el("text", _fmt(hi_y), x=_PAD - 3, y=20, font_size=10, text_anchor="end"),
    ]


def scatter_svg(
    x: Sequence[float], y: Sequence[float], title: str, x_label: str, y_label: str, reference: str
) -> str:
    """Points with a reference line: ``identity`` (y = x) or ``zero`` (y = 0)."""
    pairs = [
        (float(a), float(b)) for a, b in zip(x, y, strict=False) if a is not None and b is not None
    ]
    pairs = pairs[:: max(1, len(pairs) // _MAX_POINTS)]
    if not pairs:
        return f"<p>No sample to plot for {html.escape(title)}.</p>"
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
    if reference == "identity":
        lo_x = lo_y = min(lo_x, lo_y)
        hi_x = hi_y = max(hi_x, hi_y)
    else:
        lo_y, hi_y = min(lo_y, 0.0), max(hi_y, 0.0)
    sx, sy = _scale(lo_x, hi_x, _PAD, _W - 10), _scale(lo_y, hi_y, _H - _PAD, 10)
    body = _frame(x_label, y_label, (lo_x, hi_x, lo_y, hi_y))
    if reference == "identity":
        line = {"x1": sx(lo_x), "y1": sy(lo_y), "x2": sx(hi_x), "y2": sy(hi_y)}
    else:
        line = {"x1": _PAD, "y1": sy(0.0), "x2": _W - 10, "y2": sy(0.0)}
    body.append(_el("line", stroke="#888", stroke_dasharray=4, **line))
    body.extend(
        _el("circle", cx=sx(a), cy=sy(b), r=2, fill="#0969da", fill_opacity=0.5) for a, b in pairs
    )
    return _svg(_W, _H, title, body)


def bar_svg(values: dict[str, float], title: str, top: int = 15) -> str:
    """Horizontal bars, largest first (feature importance)."""
    items = sorted(values.items(), key=lambda kv: abs(kv[1]), reverse=True)[:top]
    if not items:
        return f"<p>No values to plot for {html.escape(title)}.</p>"
    row, label_w = 20, 160
    peak = max(abs(v) for _, v in items) or 1.0
    body = []
    for i, (name, value) in enumerate(items):
        y = 10 + i * row
        width = round(abs(value) / peak * (_W - label_w - 60), 1)
        body.append(
            _el("text", name[:28], x=label_w - 4, y=y + 13, font_size=11, text_anchor="end")
        )
        body.append(_el("rect", x=label_w, y=y + 2, width=width, height=row - 6, fill="#8250df"))
        body.append(_el("text", _fmt(value), x=label_w + width + 4, y=y + 13, font_size=10))
    return _svg(_W, 20 + row * len(items), title, body)


def _matrix(confusion: Any) -> tuple[list[str], list[list[float]]]:
    if isinstance(confusion, dict):
        matrix = confusion.get("matrix") or confusion.get("values") or []
        labels = [str(label) for label in confusion.get("labels", range(len(matrix)))]
        return labels, matrix
    matrix = list(confusion or [])
    return [str(i) for i in range(len(matrix))], matrix


def confusion_svg(confusion: Any, title: str = "Confusion matrix") -> str:
    """Cells shaded by count; rows are true classes, columns predicted."""
    labels, matrix = _matrix(confusion)
    if not matrix:
        return "<p>No confusion matrix in the evaluation.</p>"
    n = len(matrix)
    cell = min(48, (_W - 120) // max(n, 1))
    peak = max((max(r) for r in matrix if r), default=1) or 1
    body = [
        _el("text", "predicted", x=100 + cell * n / 2, y=12, text_anchor="middle", font_size=11)
    ]
    for i, row in enumerate(matrix):
        body.append(
            _el(
                "text",
                labels[i][:14],
                x=96,
                y=30 + i * cell + cell / 2,
                font_size=10,
                text_anchor="end",
            )
        )
        for j, value in enumerate(row):
            x, y = 100 + j * cell, 20 + i * cell
            shade = round(0.1 + 0.9 * float(value) / peak, 2)
            body.append(
                _el(
                    "rect",
                    x=x,
                    y=y,
                    width=cell,
                    height=cell,
                    fill="#0969da",
                    fill_opacity=shade,
                    stroke="#fff",
                )
            )
            body.append(
                _el(
                    "text",
                    _fmt(float(value)),
                    x=x + cell / 2,
                    y=y + cell / 2 + 4,
                    font_size=10,
                    text_anchor="middle",
                )
            )
    for j, label in enumerate(labels):
        body.append(
            _el(
                "text",
                label[:8],
                x=100 + j * cell + cell / 2,
                y=30 + n * cell,
                font_size=10,
                text_anchor="middle",
            )
        )
    size = 110 + cell * n
    return _svg(size, size, title, body)


def _metrics_table(ev: Evaluation) -> str:
    names = sorted(set(ev.candidate) | set(ev.baseline) | set(ev.champion or {}))
    rows = []
    for name in names:
        strong = ' style="font-weight:bold"' if name == ev.metric else ""
        cells = [ev.candidate.get(name), ev.baseline.get(name), (ev.champion or {}).get(name)]
        rows.append(
            f"<tr{strong}><td>{html.escape(name)}</td>"
            + "".join(f"<td>{_fmt(c)}</td>" for c in cells)
            + "</tr>"
        )
    head = "<tr><th>metric</th><th>candidate</th><th>naive baseline</th><th>champion</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _plots(ev: Evaluation) -> list[tuple[str, str]]:
    plots: list[tuple[str, str]] = []
    sample = ev.sample or {}
    y_true, y_pred = sample.get("y_true") or [], sample.get("y_pred") or []
    if ev.task == "classification":
        plots.append(("Confusion matrix", confusion_svg(ev.confusion_matrix)))
    elif y_true and y_pred:
        residuals = [float(p) - float(t) for t, p in zip(y_true, y_pred, strict=False)]
        title = "Predicted vs actual"
        plots.append((title, scatter_svg(y_true, y_pred, title, "actual", "predicted", "identity")))
        plots.append(
            (
                "Residuals",
                scatter_svg(
                    y_pred, residuals, "Residuals", "predicted", "predicted - actual", "zero"
                ),
            )
        )
    if ev.feature_importance:
        plots.append(("Feature importance", bar_svg(ev.feature_importance, "Feature importance")))
    return plots


def render_html(evaluation: Evaluation, decision: Decision, lineage: dict[str, Any]) -> str:
    """A self-contained page: decision, why, metrics, plots, lineage."""
    ev = evaluation
    esc = html.escape
    reasons = "".join(f"<li>{esc(r)}</li>" for r in decision.reasons)
    figures = "".join(
        f"<figure><figcaption>{esc(t)}</figcaption>{svg}</figure>" for t, svg in _plots(ev)
    )
    facts = "".join(
        f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>"
        for k, v in lineage.items()
        if v is not None
    )
    title = esc(f"{lineage.get('dataset', '')} run {lineage.get('run_id', '')}")
    direction = "lower" if decision.lower_is_better else "higher"
    rows = f" ({ev.test_rows} rows)" if ev.test_rows else ""
    badge = f'style="background:{_COLOURS[decision.status]}"'
    return "\n".join(
        [
            '<!doctype html><html lang="en"><head><meta charset="utf-8">',
            f"<title>Evaluation: {title}</title><style>{_STYLE}</style></head><body>",
            f"<h1>Evaluation of {title}</h1>",
            f'<p><span class="decision" {badge}>{esc(decision.status.value)}</span> '
            f"{esc(decision.metric)} ({direction} is better): "
            f"candidate {_fmt(decision.candidate)}, "
            f"baseline {_fmt(decision.baseline)}, champion {_fmt(decision.champion)}</p>",
            f"<ul>{reasons}</ul>",
            f"<h2>Metrics on the test set{rows}</h2>{_metrics_table(ev)}",
            f"<h2>Plots</h2>{figures or '<p>The evaluation carries no sample to plot.</p>'}",
            f"<h2>Lineage</h2><table>{facts}</table>",
            "</body></html>",
        ]
    )
