"""tempora processes: the session's server (conftest.py) and servers of a test's own, started
with extra flags (TLS, authentication, limits, a database file) on free loopback ports and
stopped when the test is done."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent.parent


def binary() -> Path:
    return Path(os.environ.get("TEMPORA_BIN") or HERE / "../../target/debug/tempora").resolve()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(address: str, proc: subprocess.Popen, log: Path, limit: float) -> None:
    host, port = address.rsplit(":", 1)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(
                f"tempora exited with code {proc.returncode} before listening; log:\n{log.read_text()}"
            )
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"tempora did not listen on {address} within {limit:g} s; log:\n{log.read_text()}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Server:
    address: str
    http_address: str
    ui_address: str
    proc: subprocess.Popen
    log: Path


def spawn(*args: str, db: str = ":memory:", port: int | None = None, env: dict[str, str] | None = None,
          log: Path | None = None) -> Server:
    """Starts a tempora with `args` added to `server start` and waits until it listens; its
    output is appended to `log` (a new temporary file if none)."""
    port = port or free_port()
    http_port, ui_port = free_port(), free_port()
    if log is None:
        fd, log_name = tempfile.mkstemp(prefix="tempora-own-", suffix=".log")
        os.close(fd)
        log = Path(log_name)
    command = [str(binary()), "server", "start", "--ip", "127.0.0.1", "--port", str(port), "--db", db,
               "--http-port", str(http_port), "--ui-port", str(ui_port), *args]
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})})
    server = Server(f"127.0.0.1:{port}", f"127.0.0.1:{http_port}", f"127.0.0.1:{ui_port}", proc, log)
    try:
        wait_until_listening(server.address, proc, log, limit=30)
    except BaseException:
        stop(proc)
        raise
    return server


@contextlib.contextmanager
def tempora(*args: str, db: str = ":memory:", env: dict[str, str] | None = None,
            port: int | None = None) -> Iterator[Server]:
    """A tempora of the test's own with `args` added to `server start`."""
    server = spawn(*args, db=db, port=port, env=env)
    try:
        yield server
    finally:
        stop(server.proc)
        server.log.unlink(missing_ok=True)
