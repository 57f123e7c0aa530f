"""A small Label Studio REST client (httpx): only the calls the loop needs, with errors that say what failed.

The official SDK is not used: it pins numpy < 2.3 and pulls ~500 MB, and it retries POST imports on 5xx,
which can create duplicate tasks. Here nothing is retried implicitly; the sync worker decides.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx

from visionloop.core.errors import UpstreamRefused, UpstreamUnavailable


class LabelStudioUnavailable(UpstreamUnavailable):
    """Label Studio could not be reached, timed out, or answered 5xx: worth retrying later."""


class LabelStudioRejected(UpstreamRefused):
    """Label Studio refused the request (4xx): retrying the same request will not help."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def label_config(class_names: Sequence[str]) -> str:
    """Image + RectangleLabels with the model's classes, in the model's order."""
    labels = "\n    ".join(f"<Label value={quoteattr(name)}/>" for name in class_names)
    return (
        '<View>\n  <Image name="image" value="$image"/>\n'
        f'  <RectangleLabels name="label" toName="image">\n    {labels}\n  </RectangleLabels>\n</View>'
    )


class LabelStudioClient:
    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise LabelStudioUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise LabelStudioUnavailable(f"{method} {path}: Label Studio answered {response.status_code}")
        if response.status_code >= 400:
            raise LabelStudioRejected(
                f"{method} {path}: {response.status_code} {response.text[:300]}", response.status_code
            )
        return response.json() if response.content else None

    def healthy(self) -> bool:
        """Label Studio answers its health check (no auth needed)."""
        try:
            return self._http.get("/health", timeout=3.0).status_code == 200
        except httpx.TransportError:
            return False

    # -- projects and storage ------------------------------------------------------------------------------------

    def ensure_project(self, title: str, class_names: Sequence[str], frames_dir: str) -> int:
        """The project named ``title`` (created with our label config on first use) with local-files serving.

        ``frames_dir`` is where frames are written, as Label Studio sees it: a folder *inside* its
        LOCAL_FILES_DOCUMENT_ROOT.
        """
        found = self._call("GET", "/api/projects", params={"title": title, "page_size": 100})
        for project in found.get("results", []):
            if project["title"] == title:
                return int(project["id"])
        created = self._call("POST", "/api/projects", json={"title": title, "label_config": label_config(class_names)})
        project_id = int(created["id"])
        # Images are served by Label Studio from files_root; this (never synced) storage is what allows it.
        self._call(
            "POST",
            "/api/storages/localfiles",
            json={
                "project": project_id,
                "path": frames_dir,
                "regex_filter": "^$",
                "use_blob_urls": True,
                "title": "visionloop frames",
            },
        )
        return project_id

    # -- tasks ---------------------------------------------------------------------------------------------------

    def import_task(self, project_id: int, data: dict[str, Any], predictions: list[dict[str, Any]]) -> int:
        task = {"data": data, "predictions": predictions}
        result = self._call(
            "POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"}, json=[task]
        )
        ids = result.get("task_ids") or []
        if not ids:
            raise LabelStudioRejected(f"import into project {project_id} returned no task id: {result}")
        return int(ids[0])

    def _query(self, project_id: int, items: list[dict[str, Any]], page_size: int = 100) -> list[dict[str, Any]]:
        """Every task matching ``items``, page by page. Label Studio answers 404 "Invalid page" for the page after
        a full last one, so paging stops at the total it reports, or at that 404 where it reports none."""
        query = json.dumps({"filters": {"conjunction": "and", "items": items}})
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"project": project_id, "query": query, "fields": "all", "page": page, "page_size": page_size}
            try:
                body = self._call("GET", "/api/tasks", params=params)
            except LabelStudioRejected as exc:
                if page > 1 and exc.status == 404:
                    return out
                raise
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            out.extend(tasks)
            total = body.get("total") if isinstance(body, dict) else None
            if len(tasks) < page_size or (isinstance(total, int) and len(out) >= total):
                return out
            page += 1

    def find_tasks_by_frame(self, project_id: int, frame_id: str) -> list[int]:
        items = [{"filter": "filter:tasks:data.frame_id", "operator": "equal", "type": "String", "value": frame_id}]
        return [int(t["id"]) for t in self._query(project_id, items)]

    def annotated_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Tasks with at least one annotation (``only_annotated`` is ignored by the open-source server)."""
        items = [{"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0}]
        return self._query(project_id, items)

    def count_tasks(self, project_id: int) -> int:
        return len(self._query(project_id, []))

    def annotate(self, task_id: int, result: list[dict[str, Any]]) -> int:
        created = self._call(
            "POST", f"/api/tasks/{task_id}/annotations", json={"result": result, "was_cancelled": False}
        )
        return int(created["id"])

    def add_webhook(self, project_id: int, url: str, secret: str) -> None:
        actions = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]
        self._call(
            "POST",
            "/api/webhooks",
            json={
                "project": project_id,
                "url": url,
                "send_payload": True,
                "send_for_all_actions": False,
                "actions": actions,
                "headers": {"X-Visionloop-Secret": secret},
            },
        )
