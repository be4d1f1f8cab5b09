"""Scorers: pure functions (answer, expected, params) -> Verdict(score in [0, 1], reason).

The definitions here are the ones docs/evals.md states; change both together.

- normalise(text): Unicode NFKC, casefold, every run of whitespace to one space, then strip
  surrounding whitespace and the characters . , ; : ! ? " ' ` ( ) [ ] * from both ends.
- exact: normalise(answer) == normalise(expected).
- contains: normalise(expected) is a substring of normalise(answer).
  For both, `expected` may be a list: any one of them matching scores 1.
- numeric: the numbers in the answer are found with NUMBER (thousands separators "1,234" allowed);
  the LAST one is compared with `expected`: correct when |a - e| <= max(abs_tol, rel_tol * |e|)
  (params `abs_tol`, `rel_tol`, both default 0). No number in the answer: 0.
- set_f1: the answer and every expected item are parsed into items (see `items`); score is the F1 of
  the two sets (both empty: 1; exactly one empty: 0).
- regex: `re.search(expected, answer)` (no flags; write `(?i)` in the pattern for case-insensitive).
- judge: a model says CORRECT or INCORRECT (see apps.evals.judge); not a pure function, not here.
"""

import math
import re
import unicodedata
from dataclasses import dataclass

SCORERS = ("exact", "contains", "numeric", "set_f1", "regex", "judge")
EDGE_CHARS = " .,;:!?\"'`()[]*"
NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
DEFAULT_SPLIT = re.compile(r"[\n,;]+")


@dataclass(frozen=True)
class Verdict:
    score: float
    reason: str

    @property
    def label(self) -> str:
        if self.score >= 1.0:
            return "correct"
        return "incorrect" if self.score <= 0.0 else "partial"


def normalise(text: object) -> str:
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    return " ".join(text.split()).strip(EDGE_CHARS)


def _options(expected: object) -> list[str]:
    return [str(e) for e in expected] if isinstance(expected, list | tuple) else [str(expected)]


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def score_exact(answer: str, expected: object, params: dict) -> Verdict:
    got = normalise(answer)
    for option in _options(expected):
        if got == normalise(option):
            return Verdict(1.0, f"answer equals {_clip(option)!r}")
    return Verdict(0.0, f"answer {_clip(got)!r} is not {' or '.join(repr(_clip(o)) for o in _options(expected))}")


def score_contains(answer: str, expected: object, params: dict) -> Verdict:
    got = normalise(answer)
    for option in _options(expected):
        wanted = normalise(option)
        if wanted and wanted in got:
            return Verdict(1.0, f"answer contains {_clip(option)!r}")
    return Verdict(0.0, f"answer lacks {' and '.join(repr(_clip(o)) for o in _options(expected))}")


def parse_number(text: str) -> float:
    return float(text.replace(",", ""))


def numbers_in(text: str) -> list[float]:
    return [parse_number(m.group(0)) for m in NUMBER.finditer(text or "")]


def score_numeric(answer: str, expected: object, params: dict) -> Verdict:
    target = expected if isinstance(expected, int | float) else parse_number(str(expected).strip())
    found = numbers_in(answer)
    if not found:
        return Verdict(0.0, "no number in the answer")
    got = found[-1]
    tolerance = max(float(params.get("abs_tol", 0)), float(params.get("rel_tol", 0)) * abs(target))
    if math.isfinite(got) and abs(got - target) <= tolerance:
        return Verdict(1.0, f"{got:g} is within {tolerance:g} of {target:g}")
    return Verdict(0.0, f"{got:g} (last number of the answer) differs from {target:g} by more than {tolerance:g}")


def items(text: str, params: dict) -> set[str]:
    """Items of a text: each match of `item_pattern` (its groups, sorted when `unordered`), else the
    pieces between newlines, commas and semicolons; each piece normalised, empty pieces dropped."""
    pattern = params.get("item_pattern")
    if not pattern:
        return {p for p in (normalise(x) for x in DEFAULT_SPLIT.split(text or "")) if p}
    found: set[str] = set()
    for match in re.finditer(pattern, text or ""):
        parts = [normalise(g) for g in match.groups()] if match.groups() else [normalise(match.group(0))]
        if params.get("unordered"):
            parts.sort()
        found.add(",".join(parts))
    return found


def score_set_f1(answer: str, expected: object, params: dict) -> Verdict:
    wanted: set[str] = set()
    for option in _options(expected):
        wanted |= items(option, params)
    got = items(answer, params)
    if not wanted and not got:
        return Verdict(1.0, "no items expected and none given")
    hits = len(wanted & got)
    if not wanted or not got or not hits:
        return Verdict(0.0, f"{hits} of {len(wanted)} expected items among {len(got)} given")
    precision, recall = hits / len(got), hits / len(wanted)
    f1 = 2 * precision * recall / (precision + recall)
    return Verdict(f1, f"{hits} of {len(wanted)} expected items among {len(got)} given "
                       f"(precision {precision:.2f}, recall {recall:.2f})")


def score_regex(answer: str, expected: object, params: dict) -> Verdict:
    pattern = str(expected)
    try:
        match = re.search(pattern, answer or "")
    except re.error as exc:
        return Verdict(0.0, f"invalid pattern {_clip(pattern)!r}: {exc}")
    if match:
        return Verdict(1.0, f"pattern matches {_clip(match.group(0))!r}")
    return Verdict(0.0, f"pattern {_clip(pattern)!r} does not match")


PURE = {
    "exact": score_exact, "contains": score_contains, "numeric": score_numeric,
    "set_f1": score_set_f1, "regex": score_regex,
}


def score(scorer: str, answer: str | None, expected: object, params: dict | None = None) -> Verdict:
    """Score one answer with a pure scorer. A missing answer (the run failed) scores 0."""
    if scorer not in PURE:
        raise ValueError(f"Unknown scorer {scorer!r}; the scorers are {', '.join(PURE)} (and judge).")
    if answer is None or not answer.strip():
        return Verdict(0.0, "no answer")
    try:
        return PURE[scorer](answer, expected, params or {})
    except (ValueError, TypeError) as exc:  # an unparsable expected value is a bad case, not a crash
        return Verdict(0.0, f"cannot score: {exc}")
