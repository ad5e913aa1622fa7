"""Kill -9 soak: under a steady load of starts and signals (official SDK client and worker),
the server is killed with SIGKILL at random every few seconds and started again on the same
database, for a while, on SQLite and on PostgreSQL. Afterwards every acknowledged workflow
exists once, completes with the right result, has seen each acknowledged signal exactly once,
and has contiguous event ids. `TEMPORA_SOAK_SECS` sets how long (CI: the default)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import uuid
from dataclasses import dataclass, field

import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from suite import workflows
from suite.servers import free_port, spawn, stop

SOAK_SECS = float(os.environ.get("TEMPORA_SOAK_SECS", "25"))


@dataclass
class Ledger:
    """What the server acknowledged, per workflow: the start, then each signal."""
    started: dict[str, list[str]] = field(default_factory=dict)
    unsure: set[str] = field(default_factory=set)  # a signal whose outcome is unknown
    kills: int = 0


async def drive(client: Client, task_queue: str, ledger: Ledger, stopping: asyncio.Event, loader: int) -> None:
    n = 0
    while not stopping.is_set():
        workflow_id = f"soak-{loader}-{n}"
        n += 1
        try:
            handle = await client.start_workflow(workflows.Inbox.run, id=workflow_id, task_queue=task_queue)
        except RPCError:
            continue  # not acknowledged: the workflow may or may not exist
        ledger.started[workflow_id] = []
        for i in range(3):
            item = f"{workflow_id}/{i}"
            try:
                await handle.signal(workflows.Inbox.add, item)
                ledger.started[workflow_id].append(item)
            except RPCError:
                ledger.unsure.add(item)


def postgres_database() -> str:
    base = os.environ["TEMPORA_TEST_POSTGRES_URL"]
    name = f"tempora_soak_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", base, "-qc", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
    return base.rsplit("/", 1)[0] + "/" + name


BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get("TEMPORA_TEST_POSTGRES_URL") else [])


@pytest.mark.deadline(SOAK_SECS * 2 + 150)
@pytest.mark.timeout(SOAK_SECS * 2 + 200)
@pytest.mark.parametrize("backend", BACKENDS)
async def test_kill_9_at_random_under_load_loses_and_duplicates_nothing(backend, tmp_path):
    db = str(tmp_path / "soak.db") if backend == "sqlite" else postgres_database()
    port = free_port()
    log = tmp_path / "server.log"
    rng = random.Random(2026)
    ledger = Ledger()
    task_queue = f"soak-{uuid.uuid4().hex[:8]}"
    server = spawn(db=db, port=port, log=log)
    try:
        client = await Client.connect(server.address)
        async with Worker(client, task_queue=task_queue, workflows=[workflows.Inbox]):
            stopping = asyncio.Event()
            loaders = [asyncio.create_task(drive(client, task_queue, ledger, stopping, n)) for n in range(4)]
            end = asyncio.get_running_loop().time() + SOAK_SECS
            while asyncio.get_running_loop().time() < end:
                await asyncio.sleep(rng.uniform(1.0, 4.0))
                server.proc.send_signal(signal.SIGKILL)
                server.proc.wait()
                ledger.kills += 1
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                server = await asyncio.to_thread(spawn, db=db, port=port, log=log)
            stopping.set()
            await asyncio.gather(*loaders)

            # Close every acknowledged workflow, then check each one (a few at a time).
            assert len(ledger.started) > 20 and ledger.kills >= 3, (len(ledger.started), ledger.kills)
            checking = asyncio.Semaphore(16)

            async def check(workflow_id: str, acknowledged: list[str]) -> None:
                async with checking:
                    handle = client.get_workflow_handle(workflow_id)
                    await handle.signal(workflows.Inbox.close)
                    result = await asyncio.wait_for(handle.result(), 60)
                    items = result["items"]
                    assert len(items) == len(set(items)), f"{workflow_id} saw a signal twice: {items}"
                    assert set(acknowledged) <= set(items), f"{workflow_id} lost signals: {acknowledged} vs {items}"
                    assert set(items) <= set(acknowledged) | ledger.unsure, f"{workflow_id}: unknown signals {items}"
                    runs = [w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
                    assert len(runs) == 1, f"{workflow_id} exists {len(runs)} times"
                    ids = [e.event_id async for e in handle.fetch_history_events()]
                    assert ids == list(range(1, len(ids) + 1)), f"{workflow_id} event ids {ids}"

            await asyncio.gather(*(check(w, a) for w, a in ledger.started.items()))
        print(f"\nsoak ({backend}): {SOAK_SECS:g} s, {ledger.kills} kills, {len(ledger.started)} workflows, "
              f"{sum(map(len, ledger.started.values()))} signals acknowledged")
    finally:
        stop(server.proc)
