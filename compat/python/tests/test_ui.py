"""The built-in web UI in a real browser (headless Chromium from Debian's packages, driven by
Playwright): the workflow list and its query box, a running workflow's history growing live,
a signal sent from the page, terminate, and a schedule paused from its page. Every action is
checked through the official Python SDK too. With TEMPORA_UI_SCREENSHOTS=DIR the main pages
are saved there (the README's pictures come from `docs/screenshots`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import pytest
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowExecutionStatus,
)

from datetime import timedelta

from suite.support import wait_until
from suite.workflows import Greeter, Inbox

CHROMIUM = os.environ.get("TEMPORA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

# CI sets TEMPORA_REQUIRE_BROWSER=1 (and installs Chromium): there a missing browser fails.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("TEMPORA_REQUIRE_BROWSER") != "1",
    reason="needs Chromium (Debian package `chromium`)",
)


class Browser:
    """One page, with the answers to give the page's prompt/confirm dialogs, in order."""

    def __init__(self, page, base: str, shots: Path | None) -> None:
        self.page = page
        self.base = base
        self.shots = shots
        self.answers: list[str | None] = []
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog) -> None:
        answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            await dialog.dismiss()
        else:
            await dialog.accept(answer)

    async def open(self, path: str) -> None:
        await self.page.goto(self.base + path)

    async def shot(self, name: str) -> None:
        if self.shots:
            await self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


@contextlib.asynccontextmanager
async def open_browser(ui_address):
    from playwright.async_api import async_playwright

    shots = os.environ.get("TEMPORA_UI_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await chromium.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        try:
            yield Browser(page, f"http://{ui_address}", Path(shots) if shots else None)
        finally:
            await chromium.close()


@pytest.mark.deadline(90)
async def test_list_filter_watch_signal_and_terminate_a_workflow(env, ui_address):
    async with open_browser(ui_address) as browser:
        client = await env.client()
        page = browser.page
        wid = f"ui-{env.task_queue}"
        async with env.worker(client):
            done = await client.execute_workflow(Greeter.run, "ui", id=f"done-{wid}", task_queue=env.task_queue)
            assert done == "hello, ui"
            handle = await client.start_workflow(Inbox.run, id=wid, task_queue=env.task_queue)
            await handle.signal(Inbox.add, "first")

            # The list shows both runs; the query box narrows it to one.
            await browser.open("/namespaces/default/workflows")
            await page.get_by_role("link", name=wid, exact=True).wait_for()
            await page.get_by_role("link", name=f"done-{wid}", exact=True).wait_for()
            await browser.shot("workflows")
            await page.fill("#query", f"WorkflowId = '{wid}'")
            await page.click("#query-form button")
            await page.wait_for_url("**/workflows?query=*")
            await page.locator("#workflows tbody tr").first.wait_for()
            rows = page.locator("#workflows tbody tr")
            await wait_until(lambda: rows.count(), what="rows")
            assert await rows.count() == 1
            assert await page.locator("#counts").inner_text() != ""
            assert "Running" in await page.locator("#counts").inner_text()

            # The running workflow's page grows while it runs: a signal sent now appears.
            await page.get_by_role("link", name=wid, exact=True).click()
            await page.locator("#history").wait_for()
            await page.click(".tabs [data-view=compact]")
            await page.get_by_text("WorkflowExecutionSignaled").first.wait_for()
            await handle.signal(Inbox.add, "second")
            await page.locator("#history li", has_text='["second"]').wait_for()
            await page.click(".tabs [data-view=timeline]")
            await browser.shot("workflow")

            # A signal from the page reaches the workflow.
            browser.answers = ["add", '"from-ui"']
            await page.click("#signal")
            await page.click(".tabs [data-view=compact]")
            await page.locator("#history li", has_text='["from-ui"]').wait_for()
            assert await handle.query(Inbox.peek) == ["first", "second", "from-ui"]

            # Terminate, with its confirmation prompt answered.
            browser.answers = ["stopped from the browser"]
            await page.click("#terminate")
            await page.locator("h1 .badge", has_text="Terminated").wait_for()
            described = await handle.describe()
            assert described.status == WorkflowExecutionStatus.TERMINATED
            history = await handle.fetch_history()
            terminated = history.events[-1].workflow_execution_terminated_event_attributes
            assert terminated.reason == "stopped from the browser"


@pytest.mark.deadline(60)
async def test_pause_a_schedule_from_its_page(env, ui_address):
    async with open_browser(ui_address) as browser:
        client = await env.client()
        page = browser.page
        schedule_id = f"ui-sched-{uuid.uuid4().hex[:8]}"
        handle = await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(Greeter.run, "s", id=f"{schedule_id}-wf", task_queue=env.task_queue),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
            ),
        )
        try:
            await browser.open("/namespaces/default/schedules")
            await page.get_by_role("link", name=schedule_id, exact=True).click()
            await page.locator("h1 .badge", has_text="Active").wait_for()
            browser.answers = ["paused from the browser"]
            await page.click("#pause")
            await page.locator("h1 .badge", has_text="Paused").wait_for()
            await browser.shot("schedule")
            described = await handle.describe()
            assert described.schedule.state.paused
            assert described.schedule.state.note == "paused from the browser"
        finally:
            await handle.delete()


@pytest.mark.deadline(60)
async def test_task_queue_and_overview_pages(env, ui_address):
    async with open_browser(ui_address) as browser:
        client = await env.client()
        page = browser.page
        async with env.worker(client):
            assert await client.execute_workflow(Greeter.run, "tq", id=f"tq-{env.task_queue}", task_queue=env.task_queue) == "hello, tq"
            await browser.open(f"/namespaces/default/task-queues/{env.task_queue}")
            await page.locator(".pollers td", has_text="@").first.wait_for()
            await browser.shot("task-queue")
        await browser.open("/namespaces/default/overview")
        await page.locator("svg polyline.started").first.wait_for()
        legend = await page.locator(".legend.started").inner_text()
        assert legend.startswith("started (") and legend != "started (0 total)"
        await browser.shot("overview")


@pytest.mark.deadline(60)
async def test_with_authentication_on_the_page_asks_for_a_key_and_shows_only_what_it_allows():
    from temporalio.client import Client

    from suite.servers import tempora

    with tempora("--api-key", "ui-reader=default:read", "--api-key", "ui-writer=default:write") as server:
        writer = await Client.connect(server.address, api_key="ui-writer", tls=False)
        workflow_id = f"ui-auth-{uuid.uuid4().hex[:8]}"
        await writer.start_workflow(Greeter.run, "auth", id=workflow_id, task_queue="nobody-polls")
        async with open_browser(server.ui_address) as browser:
            page = browser.page
            await browser.open("/namespaces/default/workflows")
            await page.locator("#sign-in").wait_for()
            await page.fill("#api-key", "wrong-key")
            await page.click("#sign-in button")
            # The sign-in form stays: wait for the refusal's own words, not only for the form
            # (which is there before the answer comes back).
            await page.locator("main", has_text="unknown API key").wait_for()
            await page.locator("#sign-in").wait_for()
            await page.fill("#api-key", "ui-reader")
            await page.click("#sign-in button")
            await page.get_by_role("link", name=workflow_id, exact=True).wait_for()
            # A reader may look, not act: terminating is refused with the server's reason.
            await page.get_by_role("link", name=workflow_id, exact=True).click()
            browser.answers = ["not allowed"]
            await page.click("#terminate")
            await page.locator(".flash.error", has_text="needs the write role").wait_for()
            assert (await writer.get_workflow_handle(workflow_id).describe()).status == \
                WorkflowExecutionStatus.RUNNING
