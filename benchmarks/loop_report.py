"""The learning-loop benchmark's report: the verdict in words, the JSON file and the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results" / "loop.json"
TABLE_KEYS = (
    "pre_shift_map50",
    "shifted_map50",
    "after_map50",
    "after_a_map50",
    "oracle_map50",
    "recovery",
    "challenger_map50",
    "camera_shifted_map50",
    "camera_after_map50",
    "camera_oracle_map50",
    "camera_recovery",
    "challenger_camera_map50",
    "unseen_shifted_map50",
    "unseen_after_map50",
    "unseen_oracle_map50",
    "unseen_recovery",
    "forgetting",
    "labels_used",
    "edits_used",
    "training_s",
    "cycle_s",
    "decision",
    "champion_after",
)
console = Console()


def decision_of(candidate: dict[str, Any] | None) -> str:
    if candidate is None:
        return "timeout (no verdict)"
    verdict = candidate.get("verdict")
    return str(verdict["decision"]) if verdict else f"no A/B: candidate {candidate.get('role')} at the gold gate"


def write_report(result: dict[str, Any], shift_domain: str, trials: int) -> None:
    """Write the result to RESULTS and print its table (the decision trials out of ``trials`` each)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    table = Table("key", "value", title=f"learning loop, shift to {shift_domain}")
    for key in TABLE_KEYS:
        table.add_row(key, str(result.get(key)))
    found = result.get("decision_trials")
    if found:
        table.add_row("right_promotions", f"{found['right_promotions']}/{trials}")
        table.add_row("false_promotions (worse)", f"{found['false_promotions_worse']}/{trials}")
        table.add_row("false_promotions (identical)", f"{found['false_promotions_identical']}/{trials}")
    console.print(table)
    console.print(f"wrote {RESULTS}")
