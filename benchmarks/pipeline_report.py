"""What the pipeline benchmark reports: the ratios its targets are set on, its tables, and the soak's figures."""

from __future__ import annotations

from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from benchmarks.reliability import record_reliability
from visionloop.core.settings import Settings

FRESH = "glass_to_result"


def _fresh(entry: dict[str, Any] | None, key: str) -> float | None:
    return entry.get(key) if entry else None


def summary(phases: dict[str, Any], baselines: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The ratios the targets are set on, all from this run."""
    capacity = phases["capacity"]["processed_fps"]
    plain = baselines["plain_loop"]
    p99_1x, p99_2x = phases["1x"]["added_latency_ms_p99"], phases["2x"]["added_latency_ms_p99"]
    fresh_capacity, fresh_plain = _fresh(phases["capacity"][FRESH], "fresh_fps"), _fresh(plain, "fresh_fps")
    return {
        "precision": settings.serving.precision,
        "raw_fps": baselines["raw"]["raw_fps"],
        "capacity_fps": capacity,
        "capacity_saturated": phases["capacity"]["skipped_fps"] > 0,
        "pipeline_efficiency": capacity / baselines["raw"]["raw_fps"],
        "plain_loop_fps": plain["fps"],
        "e2e_speedup": capacity / plain["fps"] if plain["fps"] else None,
        "fresh_fps_capacity": fresh_capacity,
        "fresh_fps_plain_loop": fresh_plain,
        "fresh_speedup": fresh_capacity / fresh_plain if fresh_capacity is not None and fresh_plain else None,
        "age_ms_p50_1x": _fresh(phases["1x"][FRESH], "age_ms_p50"),
        "age_ms_p99_1x": _fresh(phases["1x"][FRESH], "age_ms_p99"),
        "age_ms_p50_capacity": _fresh(phases["capacity"][FRESH], "age_ms_p50"),
        "age_ms_p50_plain_loop": _fresh(plain, "age_ms_p50"),
        "age_ms_p99_plain_loop": _fresh(plain, "age_ms_p99"),
        "added_latency_ms_p50_1x": phases["1x"]["added_latency_ms_p50"],
        "added_latency_ms_p99_1x": p99_1x,
        "added_latency_ms_p99_2x": p99_2x,
        "overload_p99_ratio": p99_2x / p99_1x if p99_1x and p99_2x else None,
        "skipped_fps_2x": phases["2x"]["skipped_fps"],
    }


def print_phases(console: Console, phases: dict[str, Any]) -> None:
    table = Table(title="pipeline benchmark (one run, same machine)")
    columns = ("load", "cameras", "offered fps", "processed fps", "fresh fps", "age p50 ms", "age p99 ms",
               "added p50 ms", "added p99 ms", "RSS end MB")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for name in ("1x", "capacity", "2x"):
        p = phases[name]
        ages = p[FRESH] or {}
        table.add_row(
            name,
            str(p["cameras"]),
            f"{p['offered_fps']:.0f}",
            f"{p['processed_fps']:.1f}",
            f"{ages.get('fresh_fps', float('nan')):.1f}",
            f"{ages.get('age_ms_p50', float('nan')):.0f}",
            f"{ages.get('age_ms_p99', float('nan')):.0f}",
            f"{p['added_latency_ms_p50'] or float('nan'):.1f}",
            f"{p['added_latency_ms_p99'] or float('nan'):.1f}",
            f"{p['rss_mb_end']:.0f}",
        )
    console.print(table)
    ratios = Table(title="targets (ratios measured in this run)")
    ratios.add_column("measure")
    ratios.add_column("value", justify="right")
    for key, value in phases["summary"].items():
        ratios.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(ratios)


class RedisKeyCounter:
    """How many keys Redis holds, and each stream's length, after warm-up and at the end (a leak of keys or an
    untrimmed stream shows here)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[dict[str, int]] = []

    def sample(self) -> None:
        client = redis.Redis.from_url(self.url, decode_responses=True)
        try:
            counts = {"keys": int(client.dbsize())}
            for key in client.scan_iter(count=1000):
                if client.type(key) == "stream":
                    counts[f"stream:{key}"] = int(client.xlen(key))
            counts["used_memory_mb"] = int(client.info("memory")["used_memory"]) // 2**20
            self.samples.append(counts)
        finally:
            client.close()

    def report(self) -> dict[str, Any]:
        self.sample()
        start, end = (self.samples[0], self.samples[-1]) if len(self.samples) > 1 else ({}, self.samples[-1])
        return {"after_warm_up": start, "end": end}


def record_soak(soak: dict[str, Any], seconds: float) -> None:
    """The soak's growth figures, per process, into reliability.json beside what the tests measured."""
    rows = soak["rss_per_process"]["processes"]
    figures = {
        "seconds": seconds,
        "rss_growth_pct": {f"{r['process']}[{r['pid']}]": r["growth_pct"] for r in rows},
        "threads": {f"{r['process']}[{r['pid']}]": [r["threads_start"], r["threads_end"]] for r in rows},
        "fds": {f"{r['process']}[{r['pid']}]": [r["fds_start"], r["fds_end"]] for r in rows},
        "redis_keys": soak["redis_keys"],
    }
    record_reliability("soak", figures)


def print_soak(console: Console, soak: dict[str, Any], seconds: float) -> None:
    table = Table(title=f"memory per process over {seconds:.0f} s, after a minute of warm-up")
    for column in ("process", "pid", "RSS start MB", "RSS end MB", "RSS growth %", "anon start MB", "anon growth %"):
        table.add_column(column, justify="right")
    for row in soak["rss_per_process"]["processes"]:
        table.add_row(
            row["process"], str(row["pid"]), f"{row['rss_mb_start']:.0f}", f"{row['rss_mb_end']:.0f}",
            f"{row['growth_pct']:.2f}", f"{row['anon_mb_start'] or 0:.0f}", f"{row['anon_growth_pct'] or 0:.2f}",
        )  # fmt: skip
    console.print(table)
