"""Fixtures for the Python compatibility suite.

One tempora server is started for the whole session (`TEMPORA_BIN`, default
`../../target/debug/tempora`), on a free loopback port with an in-memory store, and killed at
the end. With `TEMPORA_ADDRESS=host:port` the suite uses that server instead and starts nothing
(this is how a test is checked against the real Temporal server).

Tests are plain `async def` functions: this file runs each one in a fresh event loop, bounded
by `asyncio.timeout` (default 30 s, `@pytest.mark.deadline(seconds)` to change it), so a
server that never answers fails the test instead of hanging the run. pytest-timeout (see
pytest.ini) is the outer backstop.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DEFAULT_DEADLINE_SECS = 30.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "deadline(seconds): bound an async test's scenario (default 30 s)"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    marker = pyfuncitem.get_closest_marker("deadline")
    deadline = float(marker.args[0]) if marker else DEFAULT_DEADLINE_SECS
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    async def bounded() -> None:
        scope = asyncio.timeout(deadline)
        try:
            async with scope:
                await pyfuncitem.obj(**kwargs)
        except TimeoutError:
            if not scope.expired():
                raise  # the scenario's own, shorter bound
            pytest.fail(f"scenario did not finish within {deadline:g} s (server hang?)")

    asyncio.run(bounded())
    return True


@pytest.fixture(scope="session")
def server_address(request):
    """host:port of the server under test."""
    external = os.environ.get("TEMPORA_ADDRESS")
    if external:
        yield external
        return

    from suite.servers import binary as tempora_binary, free_port as _free_port, wait_until_listening

    binary = tempora_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.exit(
            f"tempora binary not found at {binary}: build it, or set TEMPORA_BIN "
            "(or TEMPORA_ADDRESS to use a running server)",
            returncode=2,
        )
    address = f"127.0.0.1:{_free_port()}"
    http_port, ui_port = _free_port(), _free_port()
    os.environ["TEMPORA_HTTP_ADDRESS"] = f"127.0.0.1:{http_port}"
    os.environ["TEMPORA_UI_ADDRESS"] = f"127.0.0.1:{ui_port}"
    fd, log_name = tempfile.mkstemp(prefix="tempora-compat-python-", suffix=".log")
    log = Path(log_name)
    with os.fdopen(fd, "wb") as log_file:
        proc = subprocess.Popen(
            [str(binary), "server", "start", "--ip", "127.0.0.1",
             "--port", address.rsplit(":", 1)[1], "--db", ":memory:",
             "--http-port", str(http_port), "--ui-port", str(ui_port)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        wait_until_listening(address, proc, log, limit=30)
        print(f"\ntempora {binary} on {address}, log {log}", file=sys.stderr)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if request.session.testsfailed:
            print(f"\ntempora's log: {log}", file=sys.stderr)
        else:
            log.unlink(missing_ok=True)


@pytest.fixture
def env(server_address, request):
    """What a scenario needs: the server address and names unique to this test."""
    from suite.support import Env

    env = Env(address=server_address, test_name=request.node.name)
    yield env
    env.close()


@pytest.fixture(scope="session")
def http_address(server_address):
    """host:port of the server's HTTP API (TEMPORA_HTTP_ADDRESS with TEMPORA_ADDRESS)."""
    address = os.environ.get("TEMPORA_HTTP_ADDRESS")
    if not address:
        pytest.skip("the server under test has no HTTP address (set TEMPORA_HTTP_ADDRESS)")
    return address


@pytest.fixture(scope="session")
def ui_address(server_address):
    """host:port of the server's web UI (TEMPORA_UI_ADDRESS with TEMPORA_ADDRESS)."""
    address = os.environ.get("TEMPORA_UI_ADDRESS")
    if not address:
        pytest.skip("the server under test has no UI address (set TEMPORA_UI_ADDRESS)")
    return address
