"""Bootstrap benchmark: does the bootstrap recipe reliably reach its target, and does it reproduce the shipped card?

Trains the bootstrap recipe with other training seeds (same generated world and gold set as the card's) and scores
each on gold. A seed passes when its gold mAP50 is at least ``bootstrap.target_map50`` and within ``--band`` of the
shipped card. Works in its own var/ (``<var>/bench/bootstrap``): the service's registry is only read, never written.
Each seed's model is cached by its recipe there, so a rerun reports without training (``--fresh`` retrains).

Usage: python -m benchmarks.bootstrap [--seeds 1,2,3] [--band 0.02] [--fresh]
Honours VISIONLOOP_WORLD__DOMAINS_FILE (the card then does not apply: its recipe differs, and the report says so).
Writes benchmarks/results/bootstrap.json and bootstrap.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.own_var import moved_to, own_var_dir, service_settings
from visionloop.core.plain_output import plain_when_not_a_terminal
from visionloop.core.settings import Settings
from visionloop.simulation.bootstrap import recipe_hash, recipe_of, run_bootstrap
from visionloop.simulation.model_card import ModelCard, machine_description
from visionloop.simulation.shipped_model import shipped_card

RESULTS = Path(__file__).resolve().parent / "results"
console = Console()


def seed_settings(settings: Settings, seed: int, var_dir: Path) -> Settings:
    """The service's settings with another training seed, in the benchmark's own var/, never the shipped model."""
    data = moved_to(settings, var_dir).model_dump(mode="python")
    data["training"]["seed"] = seed
    data["bootstrap"]["use_shipped"] = False
    return Settings.model_validate(data)


def seed_row(settings: Settings, seed: int, card: ModelCard | None, band: float, fresh: bool) -> dict[str, Any]:
    started = time.monotonic()
    outcome = run_bootstrap(settings, console, from_scratch=fresh)
    meta = outcome.version.meta
    row: dict[str, Any] = {
        "seed": seed,
        "version": outcome.version.version,
        "gold_map50": round(outcome.map50, 4),
        "per_class_ap50": {k: round(v["ap50"], 4) for k, v in meta["metrics"]["per_class"].items()},
        "train_seconds": meta.get("train_seconds"),
        "bootstrap_seconds": meta.get("bootstrap_seconds"),
        "reused": outcome.reused,
        "wall_seconds_now": round(time.monotonic() - started, 1),
        "meets_target": outcome.map50 >= settings.bootstrap.target_map50,
    }
    if card is not None:
        row["difference_from_card"] = round(outcome.map50 - card.gold.map50, 4)
        row["within_band"] = abs(outcome.map50 - card.gold.map50) <= band
    return row


def plot(rows: list[dict[str, Any]], card: ModelCard | None, band: float, target: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    seeds = [str(r["seed"]) for r in rows]
    ax.bar(seeds, [r["gold_map50"] for r in rows], color="#4c72b0", label="seed's gold mAP50")
    ax.axhline(target, color="#c44e52", linestyle="--", label=f"target {target:.2f}")
    if card is not None:
        ax.axhspan(card.gold.map50 - band, card.gold.map50 + band, color="#55a868", alpha=0.25,
                   label=f"card {card.gold.map50:.3f} ± {band}")  # fmt: skip
    low = min([r["gold_map50"] for r in rows] + [target]) - 0.05
    ax.set_ylim(max(0.0, low), 1.0)
    ax.set_xlabel("training seed")
    ax.set_ylabel("gold mAP50")
    ax.set_title("bootstrap recipe across seeds")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    plain_when_not_a_terminal()  # a log of three trainings, piped: plain lines, not redrawn bars
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="training seeds, comma separated (the card's is 0)")
    parser.add_argument("--band", type=float, default=0.02, help="how far from the card a seed may land")
    parser.add_argument("--fresh", action="store_true", help="retrain seeds already cached in the bench's var/")
    args = parser.parse_args()
    settings = service_settings()
    var_dir = own_var_dir(settings, "bootstrap")
    card = shipped_card()
    if card is not None and card.recipe_hash != recipe_hash(recipe_of(settings)):
        console.print(f"[yellow]these settings' recipe differs from the shipped card's ({card.recipe_hash}): "
                      "seeds are compared with the target only[/]")  # fmt: skip
        card = None
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        console.rule(f"training seed {seed}")
        rows.append(seed_row(seed_settings(settings, seed, var_dir), seed, card, args.band, args.fresh))
    target = settings.bootstrap.target_map50
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_description(),
        "command": "make bench-bootstrap",
        "target_map50": target,
        "band": args.band,
        "card": None if card is None else {"gold_map50": card.gold.map50, "recipe_hash": card.recipe_hash},
        "seeds": rows,
        "all_meet_target": all(r["meets_target"] for r in rows),
        "all_within_band": None if card is None else all(r["within_band"] for r in rows),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bootstrap.json").write_text(json.dumps(result, indent=2))
    plot(rows, card, args.band, target, RESULTS / "bootstrap.png")
    table = Table(title=f"bootstrap recipe across seeds (target {target:.2f}, band ±{args.band} of the card)")
    for column in ("seed", "gold mAP50", "vs card", "train min", "meets target", "within band"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            str(r["seed"]),
            f"{r['gold_map50']:.3f}",
            "" if card is None else f"{r['difference_from_card']:+.3f}",
            f"{(r['train_seconds'] or 0) / 60:.1f}",
            "yes" if r["meets_target"] else "NO",
            "" if card is None else ("yes" if r["within_band"] else "NO"),
        )
    console.print(table)
    console.print(f"wrote {RESULTS / 'bootstrap.json'} and bootstrap.png")


if __name__ == "__main__":
    main()
