"""Data drift of a run's rows against the champion's training data, feature by feature.

Pure (stdlib, numpy, pandas and ``mlops.ml``), so it runs wherever the shared package does.

What is measured, per feature and for the target:

* **Bins.** A numeric column is cut at the distinct deciles of the champion's training rows
  (PSI's usual ten equal-population bins), right-closed like ``rank_quantile``, plus one bin
  for nulls. Without training rows, at the profile's quantiles
  (``mlops.ml.statistics.QUANTILES``: 1, 5, 25, 50, 75, 95, 99%), whose middle bins are 25%
  wide (PSI's thresholds were set on deciles). A categorical column has a bin per category the
  profile lists, one for the profile's ``__other__`` tail, one for nulls and one for values
  training never saw.
* **Effect size: PSI**, the population stability index
  ``sum((new_i - base_i) * ln(new_i / base_i))`` over bin shares (a zero share is floored at
  ``1e-4``). The usual reading (Siddiqi, *Credit Risk Scorecards*, 2006; Yurdakul, 2018): below
  0.1 no significant change, 0.1 to 0.25 moderate, above 0.25 major.
* **Significance: a chi-square test of homogeneity** on the 2 x k table of baseline and new
  counts (two samples: the training split is a sample too, so a goodness-of-fit test against
  its shares would over-reject when the day is about as large as the training set). Bins are
  merged until every expected count is at least 5 (Cochran's rule), and PSI is computed on the
  same merged bins so that sparse categories do not inflate it.
* **Many features at once: Benjamini-Hochberg** (1995) q-values over every test of the run
  (features, target, target within segments), controlling the false discovery rate at
  ``alpha``; under the global null (a stable day) BH's chance of any flag is at most ``alpha``.
* **Flagged** = q-value below ``alpha`` AND PSI at least ``psi_floor`` (0.1; the target's own
  ``target_psi_floor`` is 0.05, see ``DriftSettings``): the test stops noise from flagging
  small samples, the effect floor stops trivia from flagging large ones.
* **Minimum sample**: a feature with fewer than ``min_rows`` non-null new values (or baseline
  values) is ``insufficient``, never drifted. PSI's own bias under no change is about
  ``(k - 1) * (1/n + 1/m)`` for k bins, so 200 rows keep it well below the 0.1 floor.
* **Target within segments**: a price shock on one category (electric cars, a fifth of the
  listings) barely moves the overall price distribution, so the target is also tested within
  each category of each categorical feature that has ``min_rows`` rows on both sides. This
  needs the training rows (the profile holds no joint statistics).

Numeric baseline counts come from the training rows when given. From the profile alone they
are its quantile levels times its count: exact for continuous columns, approximate where
values tie (a year, an engine size), which is why the monitor reads the training split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops.ml.cleaning import clean, normalise_label
from mlops.ml.features import add_features
from mlops.ml.statistics import rank_quantile

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
SHARE_FLOOR = 1e-4
NULL_BIN = "__null__"
NEW_BIN = "__new__"
OTHER_BIN = "__other__"  # mlops.ml.profile.OTHER: the profile's tail beyond its top categories

DRIFTED, STABLE, INSUFFICIENT = "drifted", "stable", "insufficient"


@dataclass(frozen=True)
class DriftSettings:
    """Thresholds of the drift decision (see the module docstring for why these values)."""

    alpha: float = 0.05
    psi_floor: float = PSI_MODERATE
    # The target's own floor is lower: the convention was built for score distributions, and a
    # price level moving 15% (PSI about 0.08 on the demo's wide price range) is exactly what
    # a pricing model must hear about. PSI's bias on a stable day of 3,000 rows is under 0.01.
    target_psi_floor: float = 0.05
    min_rows: int = 200
    min_expected: float = 5.0
    # Test the target within each category of the categorical features (needs training rows).
    segments: bool = True
    # Numeric bins: the training rows' deciles when they are given, else the profile's quantiles.
    bins: str = "deciles"


@dataclass
class FeatureDrift:
    """One test: a feature, the target, or the target within one segment (``role``)."""

    feature: str
    role: str  # "feature" | "target" | "segment"
    kind: str  # "numeric" | "categorical"
    rows_new: int
    rows_baseline: int
    status: str = INSUFFICIENT
    psi: float | None = None
    severity: str | None = None  # "none" | "moderate" | "major"
    statistic: float | None = None
    dof: int | None = None
    p_value: float | None = None
    q_value: float | None = None
    segment: str | None = None  # "<column>=<value>" for role "segment"

    @property
    def name(self) -> str:
        return f"{self.feature}|{self.segment}" if self.segment else self.feature


@dataclass
class DriftReport:
    """Every test of a run, the new categories, and the settings they were judged with."""

    tests: list[FeatureDrift]
    target: str
    settings: DriftSettings
    rows_new: int
    rows_baseline: int
    # column -> {value: count}: allowed by the contract but never in the champion's training.
    unseen_categories: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def drifted_features(self) -> list[str]:
        return [t.feature for t in self.tests if t.role == "feature" and t.status == DRIFTED]

    @property
    def target_drift(self) -> bool:
        return any(t.status == DRIFTED for t in self.tests if t.role in ("target", "segment"))

    @property
    def drifted_segments(self) -> list[str]:
        return [t.segment or "" for t in self.tests if t.role == "segment" and t.status == DRIFTED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "rows_new": self.rows_new,
            "rows_baseline": self.rows_baseline,
            "settings": asdict(self.settings),
            "drifted_features": self.drifted_features,
            "target_drift": self.target_drift,
            "drifted_segments": self.drifted_segments,
            "features": {
                t.feature: _test_dict(t) for t in self.tests if t.role in ("feature", "target")
            },
            # Only the segments that drifted: the rest would bloat the ledger item.
            "segments": {
                t.segment: _test_dict(t)
                for t in self.tests
                if t.role == "segment" and t.status == DRIFTED
            },
            "segments_tested": sum(
                1 for t in self.tests if t.role == "segment" and t.status != INSUFFICIENT
            ),
            "unseen_categories": self.unseen_categories,
        }


def _test_dict(test: FeatureDrift) -> dict[str, Any]:
    out = {
        "status": test.status,
        "kind": test.kind,
        "rows_new": test.rows_new,
        "rows_baseline": test.rows_baseline,
        "psi": test.psi,
        "severity": test.severity,
        "p_value": test.p_value,
        "q_value": test.q_value,
        "dof": test.dof,
    }
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


# --- statistics -------------------------------------------------------------------------------


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square(dof): the regularized upper gamma Q(dof/2, x/2).

    Series for small x, Lentz's continued fraction otherwise (Numerical Recipes, 6.2), so no
    scipy is needed.
    """
    if dof <= 0:
        return 1.0
    a, x = dof / 2.0, statistic / 2.0
    if x <= 0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return min(1.0, max(0.0, 1.0 - total * math.exp(log_prefix)))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, max(0.0, math.exp(log_prefix) * h))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg (1995) adjusted p-values (q-values), in the input's order."""
    m = len(p_values)
    if m == 0:
        return []
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="mergesort")
    ranked = p[order] * m / np.arange(1, m + 1)
    # q_(i) = min over j >= i of p_(j) * m / j, capped at 1.
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def psi(baseline: Sequence[float], new: Sequence[float]) -> float:
    """Population stability index of two count (or share) vectors over the same bins."""
    b = np.asarray(baseline, dtype=float)
    n = np.asarray(new, dtype=float)
    b = np.maximum(b / b.sum(), SHARE_FLOOR)
    n = np.maximum(n / n.sum(), SHARE_FLOOR)
    return float(np.sum((n - b) * np.log(n / b)))


def severity(value: float) -> str:
    if value >= PSI_MAJOR:
        return "major"
    return "moderate" if value >= PSI_MODERATE else "none"


def merge_sparse(
    baseline: Sequence[float], new: Sequence[float], min_expected: float = 5.0
) -> tuple[list[float], list[float]]:
    """Bins merged in their order until each one's expected counts (both rows) reach the floor.

    Numeric bins are passed in value order (neighbours merge); categorical ones by pooled count,
    most frequent first, so rare categories merge with each other.
    """
    total_b, total_n = float(sum(baseline)), float(sum(new))
    total = total_b + total_n
    small = min(total_b, total_n) / total if total else 0.0
    groups_b: list[float] = []
    groups_n: list[float] = []
    cur_b = cur_n = 0.0
    for b, n in zip(baseline, new, strict=True):
        cur_b += b
        cur_n += n
        if (cur_b + cur_n) * small >= min_expected:
            groups_b.append(cur_b)
            groups_n.append(cur_n)
            cur_b = cur_n = 0.0
    if cur_b or cur_n:
        if groups_b:
            groups_b[-1] += cur_b
            groups_n[-1] += cur_n
        else:
            groups_b.append(cur_b)
            groups_n.append(cur_n)
    return groups_b, groups_n


def homogeneity(baseline: Sequence[float], new: Sequence[float]) -> tuple[float, int, float]:
    """Pearson's chi-square test that two samples' bin counts share one distribution."""
    table = np.array([baseline, new], dtype=float)
    keep = table.sum(axis=0) > 0
    table = table[:, keep]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    return statistic, dof, chi2_sf(statistic, dof)


# --- bins -------------------------------------------------------------------------------------


def numeric_edges(stats: Mapping[str, Any]) -> list[float]:
    """Distinct finite quantile values of a profile's numeric column, ascending."""
    values = [v for v in (stats.get("quantiles") or {}).values() if v is not None]
    return sorted({float(v) for v in values if math.isfinite(float(v))})


def decile_edges(values: pd.Series) -> list[float]:
    """Distinct deciles of ``values`` (``rank_quantile``): PSI's usual ten equal-population bins."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64").dropna()
    ordered = np.sort(numbers.to_numpy())
    edges = {rank_quantile(ordered, q / 10) for q in range(1, 10)} - {None}
    return sorted(float(e) for e in edges if e is not None)


def numeric_counts(values: pd.Series, edges: Sequence[float]) -> list[float]:
    """Counts in (-inf, e1], (e1, e2], ..., (ek, inf), then nulls."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    present = numbers[~np.isnan(numbers)]
    index = np.searchsorted(np.asarray(edges, dtype=float), present, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(float).tolist()
    return [*counts, float(np.isnan(numbers).sum())]


def numeric_counts_from_profile(stats: Mapping[str, Any], edges: Sequence[float]) -> list[float]:
    """Baseline counts from the profile alone: quantile levels as cumulative shares.

    ``rank_quantile`` puts at least a share q at or below the q-quantile; where several levels
    share a value (ties), the highest level is taken, which is a lower bound of the true share.
    """
    count = float(stats.get("count") or 0)
    level_at: dict[float, float] = {}
    for key, value in (stats.get("quantiles") or {}).items():
        if value is None:
            continue
        level_at[float(value)] = max(level_at.get(float(value), 0.0), float(key))
    cumulative = [level_at.get(e, 0.0) for e in edges] + [1.0]
    shares = np.diff([0.0, *cumulative]).clip(min=0.0)
    return [*(shares * count).tolist(), float(stats.get("nulls") or 0)]


def category_bins(stats: Mapping[str, Any]) -> list[str]:
    """A profile's categories, most frequent first, then other, nulls and new."""
    known = [c for c in (stats.get("frequencies") or {}) if c != OTHER_BIN]
    return [*known, OTHER_BIN, NULL_BIN, NEW_BIN]


def categorical_counts(
    values: pd.Series, stats: Mapping[str, Any]
) -> tuple[list[float], dict[str, int]]:
    """Counts per ``category_bins`` of a column, and the values training never saw."""
    frequencies = stats.get("frequencies") or {}
    known = {c for c in frequencies if c != OTHER_BIN}
    # A profile truncated to its top categories cannot tell a rare known value from a new one.
    truncated = OTHER_BIN in frequencies
    present = values.dropna().astype(str)
    tallies = present.value_counts().to_dict()
    counts = dict.fromkeys(category_bins(stats), 0.0)
    unseen: dict[str, int] = {}
    for value, n in tallies.items():
        if value in known:
            counts[value] += n
        elif truncated:
            counts[OTHER_BIN] += n
        else:
            counts[NEW_BIN] += n
            unseen[str(value)] = int(n)
    counts[NULL_BIN] = float(len(values) - len(present))
    return list(counts.values()), unseen


def profile_category_counts(stats: Mapping[str, Any]) -> list[float]:
    frequencies = stats.get("frequencies") or {}
    counts = [float(frequencies[c]) for c in frequencies if c != OTHER_BIN]
    return [*counts, float(frequencies.get(OTHER_BIN, 0)), float(stats.get("nulls") or 0), 0.0]


# --- the comparison ---------------------------------------------------------------------------


def featured_rows(raw: pd.DataFrame, contract: dict[str, Any]) -> pd.DataFrame:
    """Validated rows as the profile saw training rows: cleaned (labelled rows only), featured."""
    return add_features(clean(raw, contract, training=True), contract["name"])


def training_rows(curated: pd.DataFrame, contract: dict[str, Any]) -> pd.DataFrame:
    """Curated training rows (cleaned contract columns beside model-ready ones) as the profile
    saw them: the curated zone keeps derived features only scaled, so they are derived again."""
    kept = [c for c in contract["columns"] if c in curated.columns]
    return add_features(curated[kept].copy(), contract["name"])


def _column(df: pd.DataFrame | None, name: str) -> pd.Series | None:
    if df is None:
        return None
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def _judge(
    test: FeatureDrift, base: list[float], new: list[float], settings: DriftSettings
) -> FeatureDrift:
    if min(test.rows_new, test.rows_baseline) < settings.min_rows:
        test.status = INSUFFICIENT
        return test
    merged_b, merged_n = merge_sparse(base, new, settings.min_expected)
    test.statistic, test.dof, test.p_value = homogeneity(merged_b, merged_n)
    test.psi = psi(merged_b, merged_n)
    test.severity = severity(test.psi)
    test.status = STABLE
    return test


def _order_by_pooled(base: list[float], new: list[float]) -> tuple[list[float], list[float]]:
    order = sorted(range(len(base)), key=lambda i: -(base[i] + new[i]))
    return [base[i] for i in order], [new[i] for i in order]


def compare(
    profile: Mapping[str, Any],
    new: pd.DataFrame,
    *,
    target: str,
    training: pd.DataFrame | None = None,
    settings: DriftSettings | None = None,
) -> DriftReport:
    """Drift of ``new`` (cleaned, featured rows) against the champion's training profile.

    ``training`` (the champion's cleaned, featured training rows, e.g. its curated train split)
    makes numeric baseline counts exact and enables the target-within-segment tests.
    """
    settings = settings or DriftSettings()
    tests: list[FeatureDrift] = []
    unseen: dict[str, dict[str, int]] = {}
    target_edges: list[float] = []
    for name, stats in (profile.get("numeric") or {}).items():
        train_values = _column(training, name)
        edges = (
            decile_edges(train_values)
            if train_values is not None and settings.bins == "deciles"
            else numeric_edges(stats)
        )
        if name == target:
            target_edges = edges
        new_values = _column(new, name)
        assert new_values is not None
        base = (
            numeric_counts(train_values, edges)
            if train_values is not None
            else numeric_counts_from_profile(stats, edges)
        )
        counts = numeric_counts(new_values, edges)
        test = FeatureDrift(
            feature=name,
            role="target" if name == target else "feature",
            kind="numeric",
            rows_new=int(sum(counts[:-1])),
            rows_baseline=int(sum(base[:-1])),
        )
        tests.append(_judge(test, base, counts, settings))
    for name, stats in (profile.get("categorical") or {}).items():
        new_values = _column(new, name)
        assert new_values is not None
        counts, seen_first = categorical_counts(new_values, stats)
        if seen_first and name != target:
            unseen[name] = dict(sorted(seen_first.items(), key=lambda kv: (-kv[1], kv[0])))
        base = profile_category_counts(stats)
        test = FeatureDrift(
            feature=name,
            role="target" if name == target else "feature",
            kind="categorical",
            rows_new=int(sum(counts) - counts[-2]),
            rows_baseline=int(sum(base) - base[-2]),
        )
        tests.append(_judge(test, *_order_by_pooled(base, counts), settings))
    if settings.segments and training is not None:
        tests += _segment_tests(profile, new, training, target, target_edges, settings)
    _decide(tests, settings)
    return DriftReport(
        tests=tests,
        target=target,
        settings=settings,
        rows_new=len(new),
        rows_baseline=int(len(training) if training is not None else profile.get("rows") or 0),
        unseen_categories=unseen,
    )


def _segment_tests(
    profile: Mapping[str, Any],
    new: pd.DataFrame,
    training: pd.DataFrame,
    target: str,
    edges: list[float],
    settings: DriftSettings,
) -> list[FeatureDrift]:
    """The target's distribution within each well-populated category of each categorical."""
    if not edges or target not in new.columns or target not in training.columns:
        return []
    tests: list[FeatureDrift] = []
    for name in profile.get("categorical") or {}:
        if name == target or name not in new.columns or name not in training.columns:
            continue
        new_groups = new.groupby(new[name].astype(object), dropna=True)[target]
        train_groups = dict(
            iter(training.groupby(training[name].astype(object), dropna=True)[target])
        )
        for value, new_target in new_groups:
            train_target = train_groups.get(value)
            if train_target is None:
                continue
            if min(new_target.notna().sum(), train_target.notna().sum()) < settings.min_rows:
                continue  # too few rows for a segment: not tested (and not in the BH family)
            if settings.bins == "deciles":
                edges = decile_edges(train_target)
            base = numeric_counts(train_target, edges)
            counts = numeric_counts(new_target, edges)
            test = FeatureDrift(
                feature=target,
                role="segment",
                kind="numeric",
                rows_new=int(sum(counts[:-1])),
                rows_baseline=int(sum(base[:-1])),
                segment=f"{name}={value}",
            )
            tests.append(_judge(test, base, counts, settings))
    return tests


def _decide(tests: list[FeatureDrift], settings: DriftSettings) -> None:
    """BH q-values over every test with a p-value, then the two-part flag."""
    tested = [t for t in tests if t.status != INSUFFICIENT and t.p_value is not None]
    for test, q in zip(tested, benjamini_hochberg([t.p_value or 1.0 for t in tested]), strict=True):
        test.q_value = q
        floor = settings.target_psi_floor if test.role == "target" else settings.psi_floor
        flagged = q < settings.alpha and (test.psi or 0.0) >= floor
        test.status = DRIFTED if flagged else STABLE


# --- categories outside the contract ---------------------------------------------------------


def out_of_contract_categories(
    quarantined: pd.DataFrame, contract: Mapping[str, Any]
) -> dict[str, dict[str, int]]:
    """Values quarantined as ``allowed:<column>`` (e.g. a new car model), counted per column.

    Validation refuses a category the contract does not list, so these rows never reach the
    model; their counts say when the contract should learn a value (contract evolution).
    """
    if quarantined.empty or "failed_rules" not in quarantined.columns:
        return {}
    out: dict[str, dict[str, int]] = {}
    rules = quarantined["failed_rules"].fillna("").astype(str)
    for name, spec in (contract.get("columns") or {}).items():
        if spec.get("type") not in ("category", "string") or name not in quarantined.columns:
            continue
        hit = rules.map(lambda text, rule=f"allowed:{name}": rule in text.split(";"))
        if not hit.any():
            continue
        values = quarantined.loc[hit, name].dropna().map(normalise_label)
        counts = values.value_counts()
        out[name] = {
            str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        }
    return out


def merge_category_counts(*parts: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for part in parts:
        for column, values in part.items():
            into = out.setdefault(column, {})
            for value, n in values.items():
                into[value] = into.get(value, 0) + int(n)
    return out
