"""``visionloop loop run`` and ``loop status``: the learning loop, through the running service or in this process."""

from __future__ import annotations

from typing import Annotated, Any

import redis
import typer

from visionloop.cli.client import ApiClient
from visionloop.cli.context import api_client, print_json, settings_of, status_console, stdout_to_stderr
from visionloop.core.errors import VisionloopError
from visionloop.core.progress import working
from visionloop.core.settings import Settings

loop_app = typer.Typer(help="The learning loop: challenger, gold gate, shadow, A/B.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON only.")]


def _service(ctx: typer.Context, timeout_s: float) -> ApiClient | None:
    """A client of the running service, or None when it does not answer (checked with a quick health call, so a
    long ``--wait`` that times out is an error, not a reason to train a second time here)."""
    probe = api_client(ctx, timeout_s=3)
    try:
        probe.health()
    except VisionloopError:
        return None
    finally:
        probe.close()
    return api_client(ctx, timeout_s=timeout_s)


def _redis_url_if_up(settings: Settings) -> str | None:
    client = redis.Redis.from_url(settings.redis_url(), socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()
    return settings.redis_url()


def _in_process(settings: Settings, as_json: bool) -> dict[str, Any]:
    from visionloop.learning.loop import LoopWorker

    url = _redis_url_if_up(settings)
    if url is None:
        status_console.print("Redis is not reachable: running without the job lock; events wait in var/", style="dim")

    def stage(text: str) -> None:
        status_console.print(text, markup=False, highlight=False)

    worker = LoopWorker(settings, url, on_stage=stage)
    try:
        with stdout_to_stderr(as_json), working(status_console, "Running one learning-loop cycle in this process..."):
            return worker.run_once("cli")
    finally:
        worker.stop()


def _show(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    challenger, ab = result.get("challenger") or {}, result.get("ab") or {}
    if challenger or ab:
        status_console.print(f"challenger: {challenger.get('status')} {challenger.get('version') or ''}".rstrip())
        status_console.print(f"A/B: {ab.get('status')} {ab.get('decision') or ''}".rstrip())
    print_json(result)


@loop_app.command("run")
def run(
    ctx: typer.Context,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the cycle to finish (service only).")] = False,
    as_json: JsonOption = False,
) -> None:
    """One cycle: fine-tune a challenger if enough new labels exist, gate it on gold, A/B the shadow.

    With the service up, the service's loop worker runs it (queued, or waited for with --wait); otherwise it runs
    here (training in this process unless Ray is up).
    """
    settings = settings_of(ctx)
    client = _service(ctx, timeout_s=24 * 3600 if wait else 30)
    if client is None:
        _show(_in_process(settings, as_json), as_json)
        return
    with client:
        _show(dict(client.call("POST", "/v1/loop/run", params={"wait": str(wait).lower()})), as_json)


@loop_app.command("status")
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The loop worker's state (service) or, without it, where the loop stands in the registry and data sets."""
    client = _service(ctx, timeout_s=30)
    if client is None:
        from visionloop.learning.loop import overview

        report = {"service": "not running", **overview(settings_of(ctx))}
    else:
        with client:
            report = {"service": "running", **dict(client.call("GET", "/v1/loop/status"))}
    _show(report, as_json)
