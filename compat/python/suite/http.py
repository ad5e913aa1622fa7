"""A small client of Temporal's HTTP/JSON API (urllib, run in a thread), and the scenario the
HTTP tests run: the same requests against tempora and, for the differential test, against the
real Temporal server, recorded as (step, HTTP status, JSON body)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from suite.support import NAMESPACE, wait_until


class Http:
    def __init__(self, address: str) -> None:
        self.base = f"http://{address}"

    def _call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text.decode(errors="replace")

    async def get(self, path: str) -> tuple[int, Any]:
        return await asyncio.to_thread(self._call, "GET", path)

    async def post(self, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        return await asyncio.to_thread(self._call, "POST", path, body, raw)

    async def delete(self, path: str) -> tuple[int, Any]:
        return await asyncio.to_thread(self._call, "DELETE", path)

    async def put(self, path: str) -> tuple[int, Any]:
        return await asyncio.to_thread(self._call, "PUT", path, None, b"{}")


def json_payload(value: Any) -> dict:
    """A payload in the standard (non-shorthand) form."""
    return {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode(),
    }


async def scenario(http: Http, env, *, worker_running) -> list[tuple[str, int, Any]]:
    """The requests of the HTTP tests, in order, with what each answered.

    `worker_running` is an async context manager factory: a worker of the suite's workflows on
    `env.task_queue`, so queries get answers."""
    ns = f"/api/v1/namespaces/{NAMESPACE}"
    wid = f"http-{env.task_queue}"
    w = f"{ns}/workflows/{quote(wid, safe='')}"
    out: list[tuple[str, int, Any]] = []

    async def step(name: str, call) -> Any:
        status, body = await call
        out.append((name, status, body))
        return body

    start = {
        "workflowType": {"name": "Inbox"},
        "taskQueue": {"name": env.task_queue},
        "input": [],
        "workflowRunTimeout": "90s",
        "requestId": f"req-{wid}",
        "memo": {"fields": {"m1": {"a": 1}}},
        "identity": "http-test",
    }
    started = await step("start", http.post(w, start))
    run_id = started.get("runId", "")
    await step("start again, same request id", http.post(w, start))
    await step("start again, other request id", http.post(w, {**start, "requestId": f"other-{wid}"}))
    await step("signal", http.post(f"{w}/signal/add", {"input": ["first"], "identity": "http-test"}))
    await step(
        "signal, standard payloads",
        http.post(f"{w}/signal/add?noPayloadShorthand", {"input": {"payloads": [json_payload("second")]}, "identity": "http-test"}),
    )
    async with worker_running():
        async def answered():
            status, body = await http.post(f"{w}/query/peek", {"query": {"queryType": "peek"}})
            return status == 200 and body.get("queryResult") == [["first", "second"]] and body
        query = await wait_until(answered, timeout=20, what="the query answered by the worker")
        out.append(("query", 200, query))
        await step("query, unknown type", http.post(f"{w}/query/nope", {"query": {"queryType": "nope"}}))
    await step("describe", http.get(f"{w}?execution.runId={run_id}"))
    await step("history", http.get(f"{w}/history"))
    await step("history, standard payloads", http.get(f"{w}/history?noPayloadShorthand&maximumPageSize=2"))
    await step("history reverse", http.get(f"{w}/history-reverse?maximumPageSize=1"))
    query = f"WorkflowId = '{wid}'"
    await step("list", http.get(f"{ns}/workflows?query={quote(query)}&pageSize=5"))
    await step("count", http.get(f"{ns}/workflow-count?query={quote(query)}"))
    await step("terminate", http.post(f"{w}/terminate", {"reason": "done", "details": ["bye"], "identity": "http-test"}))
    await step("describe, terminated", http.get(f"{w}"))
    await step("list, terminated", http.get(f"{ns}/workflows?query={quote(query)}"))
    await step("signal, terminated", http.post(f"{w}/signal/add", {"input": ["late"]}))
    await step("count by status", http.get(f"{ns}/workflow-count?query={quote(query + ' GROUP BY ExecutionStatus')}"))

    sched = f"{ns}/schedules/{quote('sched-' + env.task_queue, safe='')}"
    schedule = {
        "schedule": {
            "spec": {"interval": [{"interval": "3600s"}]},
            "action": {"startWorkflow": {"workflowId": f"sched-{wid}", "workflowType": {"name": "Greeter"},
                                         "taskQueue": {"name": env.task_queue}, "input": ["x"]}},
            "state": {"paused": True, "notes": "created over HTTP"},
        },
        "requestId": f"sched-{wid}",
        "identity": "http-test",
    }
    await step("create schedule", http.post(sched, schedule))
    await step("describe schedule", http.get(sched))
    await step("unpause schedule", http.post(f"{sched}/patch", {"patch": {"unpause": "resumed"}, "identity": "http-test"}))
    await step("describe schedule, unpaused", http.get(sched))
    await step("delete schedule", http.delete(sched))
    await step("describe schedule, deleted", http.get(sched))

    await step("namespace", http.get(ns))
    await step("missing namespace", http.get("/api/v1/namespaces/no-such-namespace/workflows/x"))
    await step("missing workflow", http.get(f"{ns}/workflows/no-such-workflow"))
    await step("unknown path", http.get("/api/v1/no/such/path"))
    await step("wrong verb", http.put(f"{w}/history"))
    await step("bad query value", http.get(f"{w}/history?maximumPageSize=abc"))
    await step("repeated query value", http.get(f"{w}/history?maximumPageSize=1&maximumPageSize=2"))
    await step("unknown field", http.post(f"{w}/signal/add", {"bogusField": 1}))
    await step("bad run id", http.get(f"{w}?execution.runId=bad-run"))
    await step("start without a type", http.post(f"{ns}/workflows/no-type", raw=b""))
    return out


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# Values that differ between any two servers or runs: ids, times, tokens, sizes, counters.
_VOLATILE = {
    "taskId", "historySizeBytes", "nextPageToken", "executionDuration", "stateTransitionCount",
    "eventTime", "id", "clusterId", "conflictToken", "data", "stateSizeBytes", "historyLength",
    "identity", "binaryChecksum", "sdkMetadata", "workerVersion", "meteringMetadata",
}


def normalize(value: Any, key: str = "") -> Any:
    """Ids, times and other per-run values replaced by placeholders."""
    if key in _VOLATILE:
        return "<volatile>"
    if isinstance(value, dict):
        return {k: normalize(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, key) for v in value]
    if isinstance(value, str):
        if _TIME.match(value):
            return "<time>"
        return _UUID.sub("<id>", value)
    return value
