"""What the pipeline benchmark reports: the ratios its targets are set on, its tables, and the soak's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from benchmarks.reliability import record_reliability
from visionloop.core.settings import Settings

FRESH = "glass_to_result"
SYSTEMS_COLUMNS = ("system", "N", "fresh/s", "worst camera fresh/s", "age p50 ms", "age p99 ms", "CPU cores")


def _rows(results: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
    """Per system, per camera count: the per-camera age report (with the CPU it used)."""
    systems = {kind: {int(n): row for n, row in rows.items()} for kind, rows in results["baselines"].items()}
    systems["visionloop"] = {
        int(n): {**phase["per_camera"], "cpu_cores": phase["service_cpu_cores"]}
        for n, phase in results["visionloop"].items()
    }
    return systems


def _never_falls(fresh: list[float], tolerance: float = 0.05) -> bool:
    """Fresh results/s never drop more than ``tolerance`` below the best so far as cameras are added."""
    best = 0.0
    for value in fresh:
        if value < (1 - tolerance) * best:
            return False
        best = max(best, value)
    return True


def _best_fresh(systems: dict[str, dict[int, dict[str, Any]]], names: list[str]) -> float:
    return max((row["fresh_fps"] for name in names for row in systems[name].values()), default=0.0)


def summary(results: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The figures the targets are set on, all from this run."""
    from benchmarks.ages import cameras_sustained

    systems = _rows(results)
    sustained = {name: cameras_sustained(rows) for name, rows in systems.items()}
    baseline_names = [name for name in systems if name != "visionloop"]
    best_baseline = max(baseline_names, key=lambda name: sustained[name], default=None)
    ours = systems["visionloop"]
    counts = sorted(ours)
    fresh = [ours[n]["fresh_fps"] for n in counts]
    saturating = counts[max(range(len(counts)), key=fresh.__getitem__)]
    raw_fps = results["raw"]["raw_fps"]
    four = results["visionloop"].get(4) or results["visionloop"].get("4")
    at_sustained = ours.get(sustained["visionloop"])
    overload = results["overload"]["per_camera"]
    gated, ungated = results["gated"], results["ungated"]
    gated_map, ungated_map = gated["held"]["map50"], ungated["held"]["map50"]
    calls = gated["processed_fps"] + gated["gated_fps"]
    out = {
        "precision": settings.serving.precision,
        "raw_fps": raw_fps,
        "cameras_sustained": sustained,
        "best_baseline": best_baseline,
        "e2e_speedup": (
            sustained["visionloop"] / sustained[best_baseline] if best_baseline and sustained[best_baseline] else None
        ),
        # When no baseline keeps up with even one camera, e2e_speedup has no value: compare fresh results/s at
        # each system's best camera count instead.
        "fresh_speedup": max(fresh) / best_fresh if (best_fresh := _best_fresh(systems, baseline_names)) else None,
        "saturating_cameras": saturating,
        "fresh_fps_at_saturation": max(fresh),
        "pipeline_efficiency": max(fresh) / raw_fps if raw_fps else None,
        "fresh_fps_by_cameras": {
            name: {n: rows[n]["fresh_fps"] for n in sorted(rows)} for name, rows in systems.items()
        },
        "fresh_never_falls": _never_falls(fresh),
        "added_latency_ms_p50_4": four["added_latency_ms_p50"] if four else None,
        "added_latency_ms_p99_4": four["added_latency_ms_p99"] if four else None,
        "overload_cameras": results["overload"]["cameras"],
        "age_ms_p99_sustained": at_sustained.get("age_ms_p99") if at_sustained else None,
        "age_ms_p99_overload": overload.get("age_ms_p99"),
        "overload_p99_ratio": (
            overload["age_ms_p99"] / at_sustained["age_ms_p99"]
            if at_sustained and at_sustained.get("age_ms_p99") and overload.get("age_ms_p99")
            else None
        ),
        "skipped_fps_overload": results["overload"]["skipped_fps"],
        "gating_calls_saved": gated["gated_fps"] / calls if calls else None,
        "gating_map50_ungated": ungated_map,
        "gating_map50_gated": gated_map,
        "gating_map50_cost": ungated_map - gated_map if gated_map is not None and ungated_map is not None else None,
        "gating_frames_scored": gated["held"]["frames_scored"],
        "idle_cpu_cores": results["idle"]["cpu_cores"],
    }
    clients = results.get("rtsp_clients") or {}
    for client in ("native", "ffmpeg"):
        if client in clients:
            out[f"decode_age_ms_p50_{client}"] = clients[client]["age_ms_p50"]
    return out


def print_sweep(console: Console, results: dict[str, Any]) -> None:
    table = Table(title="fresh results (age <= 150 ms) as cameras are added: one run, same machine")
    for column in SYSTEMS_COLUMNS:
        table.add_column(column, justify="right")
    for name, rows in _rows(results).items():
        for count in sorted(rows):
            row = rows[count]
            table.add_row(
                name, str(count), f"{row['fresh_fps']:.1f}", f"{row['worst_camera_fresh_fps']:.1f}",
                f"{row.get('age_ms_p50', float('nan')):.0f}", f"{row.get('age_ms_p99', float('nan')):.0f}",
                f"{row['cpu_cores']:.2f}",
            )  # fmt: skip
    console.print(table)
    idle = Table(title="idle service: CPU per process")
    idle.add_column("process")
    idle.add_column("cores", justify="right")
    for row in results["idle"]["processes"]:
        if (row["cpu_cores"] or 0) >= 0.005:
            idle.add_row(f"{row['process']} [{row['pid']}]", f"{row['cpu_cores']:.3f}")
    console.print(idle)
    ratios = Table(title="targets (measured in this run)")
    ratios.add_column("measure")
    ratios.add_column("value", justify="right")
    for key, value in results["summary"].items():
        ratios.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(ratios)


def plot_sweep(results: dict[str, Any], path: Path) -> Path:
    """Fresh results/s against cameras, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for name, rows in _rows(results).items():
        counts = sorted(rows)
        axis.plot(counts, [rows[n]["fresh_fps"] for n in counts], marker="o", label=name,
                  linewidth=2.5 if name == "visionloop" else 1.2)  # fmt: skip
    axis.set_xlabel("cameras (640x360, 15 fps)")
    axis.set_ylabel("fresh results/s (age <= 150 ms)")
    axis.set_title(f"raw backend: {results['raw']['raw_fps']:.0f} frames/s")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


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
        "private_growth_pct": {f"{r['process']}[{r['pid']}]": r["anon_growth_pct"] for r in rows},
        "threads": {f"{r['process']}[{r['pid']}]": [r["threads_start"], r["threads_end"]] for r in rows},
        "fds": {f"{r['process']}[{r['pid']}]": [r["fds_start"], r["fds_end"]] for r in rows},
        "redis_keys": soak["redis_keys"],
    }
    record_reliability("soak", figures)


def print_soak(console: Console, soak: dict[str, Any], seconds: float, warmup_s: float) -> None:
    table = Table(title=f"memory per process, from {warmup_s:.0f} s to {seconds:.0f} s (anon: private memory)")
    for column in ("process", "pid", "RSS start MB", "RSS end MB", "RSS growth %", "anon start MB", "anon growth %"):
        table.add_column(column, justify="right")
    for row in soak["rss_per_process"]["processes"]:
        table.add_row(
            row["process"], str(row["pid"]), f"{row['rss_mb_start']:.0f}", f"{row['rss_mb_end']:.0f}",
            f"{row['growth_pct']:.2f}", f"{row['anon_mb_start'] or 0:.0f}", f"{row['anon_growth_pct'] or 0:.2f}",
        )  # fmt: skip
    console.print(table)
    traced = soak.get("labeling_tracemalloc")
    if traced and "top" in traced:
        console.print(f"labeling worker, Python allocations after the warm-up: net {traced['net_kb']:+.0f} KB")
        for site in traced["top"][:5]:
            console.print(f"  {site['kb']:+9.1f} KB {site['blocks']:+7d} blocks  {' | '.join(site['where'][-2:])}")
