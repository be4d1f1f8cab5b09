"""CSV export of an evaluation's cases (one row per case, the matrix cell's columns first)."""

import csv
import io
import json

from .selectors import case_dict, case_list

CSV_COLUMNS = ("case_id", "index", "item", "model", "mode", "size", "status", "question", "expected", "answer",
               "score", "scorer", "reason", "outcome", "cost_usd", "judge_cost_usd", "latency_s", "tokens",
               "subcalls", "run_id")


TEXT_COLUMNS = ("question", "expected", "answer", "reason")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value, text: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False)
    value = str(value)
    # Answers are model output: a spreadsheet must not run one as a formula.
    return "'" + value if text and value.startswith(FORMULA_START) else value


def cases_csv(evaluation) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for case in case_list(evaluation).iterator(chunk_size=500):
        row = case_dict(case)
        writer.writerow([_cell(row[c], c in TEXT_COLUMNS) for c in CSV_COLUMNS])
    return out.getvalue()
