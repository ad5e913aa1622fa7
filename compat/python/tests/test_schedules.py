"""Schedules through the official Python SDK's schedule client and the `temporal schedule` CLI:
create (with a trigger), describe, list, pause/unpause, update, backfill, overlap policies,
matching times, delete. Every test passes against Temporal's own server too."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from temporalio.api.workflowservice.v1 import ListScheduleMatchingTimesRequest
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
)

from suite.cli import Cli, cli  # noqa: F401  (the fixture)
from suite.support import wait_until
from suite.workflows import Greeter, Sleeper


def sid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def greeter_action(env, workflow_id: str) -> ScheduleActionStartWorkflow:
    return ScheduleActionStartWorkflow(Greeter.run, "sched", id=workflow_id, task_queue=env.task_queue)


async def test_create_with_trigger_describe_list_pause_update_delete(env):
    client = await env.client()
    schedule_id = sid("lifecycle")
    schedule = Schedule(
        action=greeter_action(env, f"{schedule_id}-wf"),
        spec=ScheduleSpec(cron_expressions=["0 12 * * MON"]),
        state=ScheduleState(note="created"),
    )
    async with env.worker(client):
        handle = await client.create_schedule(schedule_id, schedule, trigger_immediately=True)
        with pytest.raises(ScheduleAlreadyRunningError):
            await client.create_schedule(schedule_id, schedule)
        described = await handle.describe()
        # Right after the create, the trigger is already counted.
        assert described.info.num_actions == 1
        [action] = described.info.recent_actions
        assert action.action.workflow_id.startswith(f"{schedule_id}-wf-")
        result = await client.get_workflow_handle(action.action.workflow_id).result()
        assert result == "hello, sched"
    [calendar] = described.schedule.spec.calendars
    assert (calendar.second, calendar.minute, calendar.hour) == ((ScheduleRange(0),), (ScheduleRange(0),), (ScheduleRange(12),))
    assert calendar.day_of_week == (ScheduleRange(1),)
    assert calendar.day_of_month == (ScheduleRange(1, 31),) and calendar.month == (ScheduleRange(1, 12),)
    assert described.schedule.spec.cron_expressions == []
    assert len(described.info.next_action_times) == 10
    assert all(t.weekday() == 0 and t.hour == 12 for t in described.info.next_action_times)
    assert described.schedule.policy.catchup_window == timedelta(days=365)
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP

    await handle.pause(note="hold on")
    described = await handle.describe()
    assert described.schedule.state.paused and described.schedule.state.note == "hold on"
    await handle.unpause(note="go")
    assert not (await handle.describe()).schedule.state.paused

    def longer_interval(input):
        s = input.description.schedule
        s.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=2), offset=timedelta(minutes=5))])
        return ScheduleUpdate(schedule=s)

    await handle.update(longer_interval)
    described = await handle.describe()
    [interval] = described.schedule.spec.intervals
    assert (interval.every, interval.offset) == (timedelta(hours=2), timedelta(minutes=5))
    assert described.schedule.spec.calendars == []

    listed = await wait_until(
        lambda: _ids(client), what="the schedule listed", timeout=15
    )
    assert schedule_id in listed
    await handle.delete()
    await wait_until(lambda: _absent(client, schedule_id), what="the schedule gone from the list", timeout=15)


async def _ids(client) -> list[str]:
    return [s.id async for s in await client.list_schedules()]


async def _absent(client, schedule_id: str) -> bool:
    return schedule_id not in await _ids(client)


@pytest.mark.deadline(40)
async def test_an_interval_schedule_fires_and_skips_overlaps(env):
    """Every second, SKIP overlap, each run sleeping 2.5 s: runs never overlap, and the times
    that came while one ran are counted as skipped."""
    client = await env.client()
    schedule_id = sid("interval")
    async with env.worker(client):
        handle = await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(Sleeper.run, 2.5, id=f"{schedule_id}-wf", task_queue=env.task_queue),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )

        async def two_done():
            d = await handle.describe()
            done = [a for a in d.info.recent_actions if a.action.workflow_id]
            return d if len(done) >= 2 and d.info.num_actions >= 2 else None

        described = await wait_until(two_done, what="two scheduled runs", timeout=25, interval=0.5)
        await handle.delete()
    assert described.info.num_actions_skipped_overlap >= 1, described.info
    assert len(described.info.running_actions) <= 1
    first, second = described.info.recent_actions[:2]
    assert (second.scheduled_at - first.scheduled_at).total_seconds() >= 2


async def test_backfill_starts_each_time_in_the_range_and_matching_times(env):
    client = await env.client()
    schedule_id = sid("backfill")
    async with env.worker(client):
        handle = await client.create_schedule(
            schedule_id,
            Schedule(
                action=greeter_action(env, f"{schedule_id}-wf"),
                spec=ScheduleSpec(calendars=[ScheduleCalendarSpec(minute=[ScheduleRange(0, 59, 15)], hour=[ScheduleRange(0, 23)])]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
                state=ScheduleState(paused=True),
            ),
        )
        start = datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)
        await handle.backfill(ScheduleBackfill(start_at=start, end_at=start + timedelta(hours=1), overlap=ScheduleOverlapPolicy.ALLOW_ALL))
        described = await wait_until(
            lambda: _with_actions(handle, 5), what="five backfilled runs", timeout=15
        )
        await handle.delete()
    times = sorted(a.scheduled_at for a in described.info.recent_actions)
    assert times == [start + timedelta(minutes=15 * i) for i in range(5)]
    ids = sorted(a.action.workflow_id for a in described.info.recent_actions)
    assert ids[0] == f"{schedule_id}-wf-2024-03-01T10:00:00Z"

    # Matching times of a live schedule, through the raw API.
    handle = await client.create_schedule(
        sid("matching"),
        Schedule(action=greeter_action(env, "m"), spec=ScheduleSpec(cron_expressions=["30 9 * * *"], time_zone_name="America/New_York"),
                 state=ScheduleState(paused=True)),
    )
    response = await client.workflow_service.list_schedule_matching_times(
        ListScheduleMatchingTimesRequest(
            namespace=client.namespace, schedule_id=handle.id,
            start_time=_ts(datetime(2024, 3, 8, tzinfo=timezone.utc)), end_time=_ts(datetime(2024, 3, 12, tzinfo=timezone.utc)),
        )
    )
    hours = [t.ToDatetime().hour for t in response.start_time]
    # 09:30 in New York is 14:30 UTC before the DST switch (March 10, 2024) and 13:30 after.
    assert hours == [14, 14, 13, 13], [t.ToDatetime() for t in response.start_time]
    await handle.delete()


async def _with_actions(handle, n: int):
    d = await handle.describe()
    return d if d.info.num_actions >= n else None


def _ts(t: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromDatetime(t)
    return ts


def test_schedule_cli_create_describe_toggle_trigger_list_delete(cli: Cli):
    schedule_id = sid("cli")
    cli.run("schedule", "create", "--schedule-id", schedule_id, "--cron", "0 12 * * MON",
            "--workflow-id", "cli-wf", "--task-queue", "cli-q", "--type", "Nobody", "--paused")
    described = cli.json("schedule", "describe", "--schedule-id", schedule_id)
    assert described["schedule"]["state"]["paused"] is True, described
    cal = described["schedule"]["spec"]["structuredCalendar"][0]
    assert cal["hour"] == [{"start": 12, "end": 12, "step": 1}], cal
    cli.run("schedule", "toggle", "--schedule-id", schedule_id, "--unpause", "--reason", "go")
    assert cli.json("schedule", "describe", "--schedule-id", schedule_id)["schedule"]["state"].get("paused") is not True
    cli.run("schedule", "trigger", "--schedule-id", schedule_id)
    described = cli.json("schedule", "describe", "--schedule-id", schedule_id)
    assert int(described["info"].get("actionCount", 0)) == 1, described["info"]
    listed = cli.jsonl("schedule", "list")
    assert schedule_id in [s["scheduleId"] for s in listed]
    cli.run("schedule", "delete", "--schedule-id", schedule_id)
    missing = cli.run("schedule", "describe", "--schedule-id", schedule_id, check=False)
    assert missing.returncode == 1
