"""Cell statistics: Wilson interval for binary scores, normal approximation for fractional ones,
nearest-rank percentiles, unknown cost stays unknown."""

import math

import pytest

from apps.evals.stats import cell_stats, ci95, percentile, wilson


def test_wilson_matches_the_textbook_formula():
    low, high = wilson(8, 10)
    p, n, z = 0.8, 10, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == pytest.approx(1.0)
    assert wilson(0, 0) is None


def test_fractional_scores_use_the_normal_approximation_clipped_to_the_unit_interval():
    scores = [0.5, 1.0, 0.25, 0.75]
    mean = sum(scores) / 4
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / 3)
    assert ci95(scores) == pytest.approx((mean - 1.96 * sd / 2, min(1.0, mean + 1.96 * sd / 2)))


def test_nearest_rank_percentiles():
    values = list(range(1, 21))
    assert percentile(values, 50) == 10 and percentile(values, 95) == 19 and percentile(values, 100) == 20
    assert percentile([3.0], 95) == 3.0 and percentile([], 50) is None


def row(score, cost=0.01, latency=1.0, outcome="succeeded", known=True):
    return {"score": score, "cost_usd": cost, "cost_known": known, "latency_s": latency, "tokens": 100,
            "subcalls": 2, "outcome": outcome}


def test_cell_stats():
    rows = [row(1), row(0, 0.03, 3.0, "budget_exceeded_cost"), row(1, 0.02, 2.0), row(0, 0.05, 5.0, "provider_error")]
    stats = cell_stats(rows)
    assert stats["accuracy"] == 0.5 and stats["ci95"] == pytest.approx(list(wilson(2, 4)))
    assert stats["cost_usd_mean"] == pytest.approx(0.0275) and stats["cost_usd_p95"] == 0.05
    assert stats["latency_s_p50"] == 2.0 and stats["latency_s_p95"] == 5.0
    assert stats["failures"] == {"budget_exceeded_cost": 1, "provider_error": 1}


def test_one_unpriced_case_makes_the_cell_cost_unknown():
    stats = cell_stats([row(1), row(1, cost=None, known=False)])
    assert stats["cost_usd_mean"] is None and stats["cost_usd_p95"] is None and stats["cost_unknown_cases"] == 1
