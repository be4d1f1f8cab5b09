"""Statistics of a matrix cell, as docs/evals.md defines them. Pure functions of per-case rows.

- accuracy: mean score over the scored cases (a failed run scores 0; pending, skipped and
  cancelled cases are not counted).
- ci95: when every score is 0 or 1, the Wilson score interval (z = 1.96); otherwise (set-F1's
  fractional scores) the normal approximation mean ± 1.96·s/√n (s the sample standard deviation),
  clipped to [0, 1]. No cases: None.
- percentiles: nearest rank: the value at position ceil(p/100 · n) of the sorted values.
- cost: None ("unknown") when any case of the cell has a run with an unpriced model call.
"""

import math
from collections import Counter

Z95 = 1.96


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: list[float], z: float = Z95) -> tuple[float, float] | None:
    n = len(values)
    if n == 0:
        return None
    mean = sum(values) / n
    if n == 1:
        return max(0.0, mean), min(1.0, mean)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = z * sd / math.sqrt(n)
    return max(0.0, mean - half), min(1.0, mean + half)


def ci95(scores: list[float]) -> tuple[float, float] | None:
    if all(s in (0.0, 1.0) for s in scores):
        return wilson(sum(1 for s in scores if s == 1.0), len(scores))
    return mean_interval(scores)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def cell_stats(rows: list[dict]) -> dict:
    """Aggregates of one cell from its scored case rows (dicts with score, cost_usd, cost_known,
    latency_s, tokens, subcalls, outcome)."""
    scores = [float(r["score"]) for r in rows]
    interval = ci95(scores)
    priced = all(r.get("cost_known", True) and r.get("cost_usd") is not None for r in rows)
    costs = [float(r["cost_usd"]) for r in rows] if priced else []
    latencies = [float(r["latency_s"]) for r in rows if r.get("latency_s") is not None]
    failures = Counter(r["outcome"] for r in rows if r.get("outcome") and not r["outcome"].startswith("succeeded"))
    return {
        "cases": len(rows),
        "accuracy": mean(scores),
        "ci95": list(interval) if interval else None,
        "cost_usd_mean": mean(costs) if priced else None,
        "cost_usd_p95": percentile(costs, 95) if priced else None,
        "cost_unknown_cases": sum(1 for r in rows if not r.get("cost_known", True) or r.get("cost_usd") is None),
        "latency_s_p50": percentile(latencies, 50),
        "latency_s_p95": percentile(latencies, 95),
        "tokens_mean": mean([float(r.get("tokens") or 0) for r in rows]),
        "subcalls_mean": mean([float(r.get("subcalls") or 0) for r in rows]),
        "failures": dict(sorted(failures.items())),
    }
