"""Running tempora in production: settings from flags, TEMPORA_* variables and a TOML file,
JSON logs, health and readiness probes, and online backup and restore of the SQLite database
under load, checked through the official SDK."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload, Payloads, WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from suite import workflows
from suite.servers import binary, free_port, stop, tempora, wait_until_listening
from suite.support import wait_until


def tempora_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary()), *args], capture_output=True, text=True, timeout=120)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_settings_come_from_flags_variables_and_a_config_file(tmp_path):
    port, http_port = free_port(), free_port()
    config = tmp_path / "tempora.toml"
    config.write_text(
        f'ip = "127.0.0.1"\nport = 1\ndb = ":memory:"\nnamespaces = ["from-file"]\nhttp_port = {http_port}\n'
        f'ui_port = 0\nlog_format = "json"\n\n[rate_limits]\nrequests_per_second = 1000\n'
    )
    log = tmp_path / "stderr.log"
    # The variable overrides the file's port; the flag adds to the file's namespaces.
    environment = {**os.environ, "TEMPORA_PORT": str(port), "TEMPORA_NAMESPACES": "from-env"}
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(binary()), "server", "start", "--config", str(config)],
                                env=environment, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until_listening(f"127.0.0.1:{port}", proc, log, limit=30)
        assert get(f"http://127.0.0.1:{http_port}/healthz") == (200, "ok\n")
        assert get(f"http://127.0.0.1:{http_port}/readyz") == (200, "ready\n")
        for namespace in ("from-file", "from-env"):
            status, body = get(f"http://127.0.0.1:{http_port}/api/v1/namespaces/{namespace}")
            assert status == 200, body
    finally:
        stop(proc)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    started = [line for line in lines if line.get("message") == "tempora server started"]
    assert started and started[0]["level"] == "INFO" and started[0]["address"] == f"127.0.0.1:{port}", lines

    (tmp_path / "bad.toml").write_text('prot = 7233\n')
    bad = tempora_command("server", "start", "--config", str(tmp_path / "bad.toml"))
    assert bad.returncode == 2 and "prot" in bad.stderr, bad
    help_text = tempora_command("server", "start", "--help").stdout
    for variable in ("TEMPORA_PORT", "TEMPORA_DB", "TEMPORA_TLS_CERT", "TEMPORA_API_KEYS", "TEMPORA_CONFIG"):
        assert variable in help_text


async def start_load(client: Client, task_queue: str, acknowledged: list[str], stopping: asyncio.Event,
                     loaders: int = 4) -> list[asyncio.Task]:
    async def load(loader: int) -> None:
        i = 0
        while not stopping.is_set():
            handle = await client.start_workflow(workflows.Greeter.run, f"{loader}-{i}",
                                                 id=f"load-{loader}-{i}", task_queue=task_queue)
            acknowledged.append(handle.id)
            i += 1

    return [asyncio.create_task(load(n)) for n in range(loaders)]


async def test_online_backup_under_load_restores_every_start_acknowledged_before_it(tmp_path):
    live, copy, restored = tmp_path / "live.db", tmp_path / "backup.db", tmp_path / "restored.db"
    acknowledged: list[str] = []
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    with tempora(db=str(live)) as server:
        client = await Client.connect(server.address)
        async with Worker(client, task_queue=task_queue, workflows=[workflows.Greeter]):
            stopping = asyncio.Event()
            loaders = await start_load(client, task_queue, acknowledged, stopping)
            await asyncio.sleep(1.5)
            before = list(acknowledged)
            backup = await asyncio.to_thread(tempora_command, "db", "backup", "--db", str(live), str(copy))
            await asyncio.sleep(0.5)
            stopping.set()
            await asyncio.gather(*loaders)
        assert backup.returncode == 0, backup.stderr
        assert "backed up" in backup.stdout
        assert len(before) > 20, before
        again = tempora_command("db", "backup", "--db", str(live), str(copy))
        assert again.returncode != 0 and "never overwrites" in again.stderr

    assert tempora_command("db", "restore", "--db", str(restored), str(copy)).returncode == 0
    with tempora(db=str(restored)) as server:
        busy = tempora_command("db", "restore", "--db", str(restored), str(copy))
        assert busy.returncode != 0 and "in use by another tempora server" in busy.stderr, busy
        client = await Client.connect(server.address)
        for workflow_id in before:
            await client.get_workflow_handle(workflow_id).describe()
        assert (await client.count_workflows()).count >= len(before)
        # The restored server runs workflows like any other.
        async with Worker(client, task_queue=task_queue, workflows=[workflows.Greeter]):
            assert await client.execute_workflow(workflows.Greeter.run, "restored", id="after-restore",
                                                 task_queue=task_queue) == "hello, restored"

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    refused = tempora_command("db", "restore", "--db", str(tmp_path / "target.db"), str(garbage))
    assert refused.returncode != 0 and "garbage.db" in refused.stderr, refused
    pg = tempora_command("db", "backup", "--db", "postgres://postgres@127.0.0.1/test", str(tmp_path / "pg"))
    assert pg.returncode != 0 and "pg_dump" in pg.stderr


@pytest.mark.deadline(120)
async def test_copies_of_the_files_taken_at_any_instant_under_load_open_consistent(tmp_path):
    """A copy of the database and its write-ahead log taken while the server is frozen (what a
    crash or a filesystem snapshot leaves at that instant) opens as a consistent store holding
    every start acknowledged before the copy began."""
    live = tmp_path / "live.db"
    acknowledged: list[str] = []
    copies: list[tuple[Path, list[str]]] = []
    rng = random.Random(7)
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    with tempora(db=str(live)) as server:
        client = await Client.connect(server.address)
        async with Worker(client, task_queue=task_queue, workflows=[workflows.Greeter]):
            stopping = asyncio.Event()
            loaders = await start_load(client, task_queue, acknowledged, stopping)
            for n in range(4):
                await asyncio.sleep(0.4 + rng.random())
                before = list(acknowledged)
                copy = tmp_path / f"copy-{n}.db"
                server.proc.send_signal(signal.SIGSTOP)
                try:
                    for suffix in ("", "-wal"):
                        if Path(f"{live}{suffix}").exists():
                            shutil.copyfile(f"{live}{suffix}", f"{copy}{suffix}")
                finally:
                    server.proc.send_signal(signal.SIGCONT)
                copies.append((copy, before))
            stopping.set()
            await asyncio.gather(*loaders)
    assert len(copies[-1][1]) > 20, copies[-1][1]
    for copy, before in copies:
        with tempora(db=str(copy)) as server:
            client = await Client.connect(server.address)
            for workflow_id in before:
                await client.get_workflow_handle(workflow_id).describe()
        checked = tempora_command("db", "backup", "--db", str(copy), f"{copy}.checked")
        assert checked.returncode == 0, checked.stderr


@pytest.mark.deadline(120)
@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (needs root)")
async def test_a_full_disk_fails_writes_clearly_keeps_reads_and_recovers_when_space_returns(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(small)], check=True)
    try:
        db = small / "tempora.db"
        task_queue = f"tq-{uuid.uuid4().hex[:8]}"
        acknowledged: list[str] = []
        with tempora(db=str(db)) as server:
            client = await Client.connect(server.address)
            for i in range(5):
                acknowledged.append((await client.start_workflow(
                    workflows.Greeter.run, "before", id=f"before-{i}", task_queue=task_queue)).id)
            filler = small / "filler"
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * (256 * 1024))
                        f.flush()
                except OSError:
                    pass

            def start(workflow_id: str):
                request = StartWorkflowExecutionRequest(
                    namespace="default", workflow_id=workflow_id, workflow_type=WorkflowType(name="Greeter"),
                    task_queue=TaskQueue(name=task_queue), request_id=str(uuid.uuid4()),
                    input=Payloads(payloads=[Payload(data=b'"' + b"x" * 60_000 + b'"',
                                                     metadata={"encoding": b"json/plain"})]))
                return client.workflow_service.start_workflow_execution(request, retry=False,
                                                                        timeout=timedelta(seconds=10))

            failures = []
            for i in range(40):
                try:
                    await start(f"full-{i}")
                    acknowledged.append(f"full-{i}")
                except RPCError as e:
                    failures.append(e)
            assert failures, "the disk never filled"
            assert {e.status for e in failures} == {RPCStatusCode.UNAVAILABLE}, failures
            assert any("full" in e.message for e in failures), [e.message for e in failures]

            # Reads keep working meanwhile.
            for workflow_id in acknowledged:
                await client.get_workflow_handle(workflow_id).describe()
            assert (await client.count_workflows()).count == len(acknowledged)

            # Space returns: writes work again without a restart.
            filler.unlink()

            async def writes_again() -> bool:
                try:
                    await start("after-space")
                    return True
                except RPCError:
                    return False

            await wait_until(writes_again, what="a start after space returned", timeout=20)
            acknowledged.append("after-space")
        with tempora(db=str(db)) as server:
            client = await Client.connect(server.address)
            for workflow_id in acknowledged:
                await client.get_workflow_handle(workflow_id).describe()
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
