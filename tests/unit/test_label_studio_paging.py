"""Paging through Label Studio's task list ends on a full last page without an error, whether or not the server
reports a total: Label Studio answers 404 "Invalid page" for the page after the last, and a project holding exactly
100, 200 ... matching tasks must not turn every reconcile into a failure. (A real server is in
tests/integration/test_label_studio_roundtrip.py; this seam covers a server that reports no total.)"""

from __future__ import annotations

import httpx
import pytest

from visionloop.labeling.label_studio_client import LabelStudioClient, LabelStudioRejected


def _client(tasks: int, report_total: bool, asked: list[int]) -> LabelStudioClient:
    def answer(request: httpx.Request) -> httpx.Response:
        page, size = int(request.url.params["page"]), int(request.url.params["page_size"])
        asked.append(page)
        ids = list(range(tasks))[(page - 1) * size : page * size]
        if page > 1 and not ids:
            return httpx.Response(404, json={"detail": "Invalid page."})
        body: dict[str, object] = {"tasks": [{"id": i} for i in ids]}
        if report_total:
            body["total"] = tasks
        return httpx.Response(200, json=body)

    client = LabelStudioClient("http://label-studio.invalid", "token")
    client._http = httpx.Client(base_url="http://label-studio.invalid", transport=httpx.MockTransport(answer))
    return client


@pytest.mark.parametrize("report_total", [True, False])
@pytest.mark.parametrize("tasks", [0, 1, 99, 100, 101, 200])
def test_every_task_comes_back_once(tasks: int, report_total: bool) -> None:
    asked: list[int] = []
    found = _client(tasks, report_total, asked)._query(1, [], page_size=100)
    assert [t["id"] for t in found] == list(range(tasks))
    full_pages = tasks // 100 if tasks else 0
    if report_total and tasks:
        assert asked == list(range(1, -(-tasks // 100) + 1))  # never the page after a full last one
    else:
        assert len(asked) <= full_pages + 1


def test_a_404_on_the_first_page_is_still_an_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Not found."})

    client = LabelStudioClient("http://label-studio.invalid", "token")
    client._http = httpx.Client(base_url="http://label-studio.invalid", transport=httpx.MockTransport(answer))
    with pytest.raises(LabelStudioRejected) as raised:
        client._query(1, [])
    assert raised.value.status == 404
