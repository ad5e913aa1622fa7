"""Gates that let a test hold a workflow task open: workflow code calls `hold(name)` (this module
is passed through the sandbox, so workflow and test share it); the test waits for
`entered(name)`, does what must happen while the task is in progress, then `release(name)`.
A hold lasts at most `limit` seconds, below the SDK's 2 s deadlock detector."""

from __future__ import annotations

import threading

_lock = threading.Lock()
_gates: dict[str, tuple[threading.Event, threading.Event]] = {}


def _gate(name: str) -> tuple[threading.Event, threading.Event]:
    with _lock:
        return _gates.setdefault(name, (threading.Event(), threading.Event()))


def hold(name: str, limit: float = 1.5) -> None:
    entered, released = _gate(name)
    entered.set()
    released.wait(limit)


def entered(name: str) -> threading.Event:
    return _gate(name)[0]


def release(name: str) -> None:
    _gate(name)[1].set()
