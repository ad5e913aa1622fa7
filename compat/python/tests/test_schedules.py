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
    cli.run("schedule", "update", "--schedule-id", schedule_id, "--interval", "2h/15m",
            "--workflow-id", "cli-wf", "--task-queue", "cli-q", "--type", "Nobody", "--overlap-policy", "AllowAll")
    described = cli.json("schedule", "describe", "--schedule-id", schedule_id)
    assert described["schedule"]["spec"]["interval"] == [{"interval": "7200s", "phase": "900s"}], described["schedule"]["spec"]
    assert described["schedule"]["policies"]["overlapPolicy"] == "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"
    cli.run("schedule", "backfill", "--schedule-id", schedule_id, "--start-time", "2024-03-01T00:00:00Z",
            "--end-time", "2024-03-01T04:00:00Z", "--overlap-policy", "AllowAll")
    runs = []
    for _ in range(50):
        runs = [w["execution"]["workflowId"] for w in cli.jsonl("workflow", "list", "--query", "WorkflowId STARTS_WITH 'cli-wf-2024'")]
        if len(runs) == 2:
            break
        import time

        time.sleep(0.2)
    assert sorted(runs) == ["cli-wf-2024-03-01T00:15:00Z", "cli-wf-2024-03-01T02:15:00Z"], runs
    cli.run("schedule", "delete", "--schedule-id", schedule_id)
    missing = cli.run("schedule", "describe", "--schedule-id", schedule_id, check=False)
    assert missing.returncode == 1


async def _run_result(client, described, index: int):
    action = sorted(described.info.recent_actions, key=lambda a: a.started_at)[index]
    return await client.get_workflow_handle(action.action.workflow_id).result()


async def test_a_run_sees_the_previous_runs_result_and_a_failure_pauses(env):
    from suite.workflows import Accumulate

    client = await env.client()
    schedule_id = sid("carry")
    async with env.worker(client):
        handle = await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(Accumulate.run, id=f"{schedule_id}-wf", task_queue=env.task_queue),
                spec=ScheduleSpec(cron_expressions=["0 0 1 1 *"]),
                state=ScheduleState(paused=True),
            ),
            trigger_immediately=True,
        )
        assert await _run_result(client, await handle.describe(), 0) == 1
        await asyncio.sleep(1.1)  # a new second: the next run's id differs
        await handle.trigger()
        described = await wait_until(lambda: _with_actions(handle, 2), what="the second run", timeout=15)
        assert await _run_result(client, described, 1) == 2
        await handle.delete()

        failing_id = sid("fails")
        handle = await client.create_schedule(
            failing_id,
            Schedule(
                action=ScheduleActionStartWorkflow(Greeter.run, "", id=f"{failing_id}-wf", task_queue=env.task_queue),
                spec=ScheduleSpec(cron_expressions=["0 0 1 1 *"]),
                policy=SchedulePolicy(pause_on_failure=True),
            ),
            trigger_immediately=True,
        )

        async def paused():
            d = await handle.describe()
            return d if d.schedule.state.paused else None

        described = await wait_until(paused, what="paused after the failure", timeout=15)
        run_id = described.info.recent_actions[0].action.workflow_id
        assert described.schedule.state.note == f"paused due to workflow failure: {run_id}: no name given"
        await handle.delete()


@pytest.mark.parametrize("policy", ["TERMINATE_OTHER", "CANCEL_OTHER"])
async def test_terminate_or_cancel_other_ends_the_running_run_for_the_new_one(env, policy):
    client = await env.client()
    schedule_id = sid(policy.lower().replace("_", "-"))
    async with env.worker(client):
        handle = await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(Sleeper.run, 60.0, id=f"{schedule_id}-wf", task_queue=env.task_queue),
                spec=ScheduleSpec(cron_expressions=["0 0 1 1 *"]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy[policy]),
            ),
            trigger_immediately=True,
        )
        first = (await handle.describe()).info.recent_actions[0].action.workflow_id
        await asyncio.sleep(1.1)
        await handle.trigger()
        described = await wait_until(lambda: _with_actions(handle, 2), what="the second run", timeout=15)
        from temporalio.client import WorkflowExecutionStatus

        first_status = (await client.get_workflow_handle(first).describe()).status
        expected = "TERMINATED" if policy == "TERMINATE_OTHER" else "CANCELED"
        assert first_status == WorkflowExecutionStatus[expected]
        assert [a.workflow_id for a in described.info.running_actions] != [first]
        await handle.delete()
        await client.get_workflow_handle(described.info.recent_actions[-1].action.workflow_id).terminate("cleanup")


async def test_list_schedules_by_query(env):
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from suite.workflows import CUSTOMER_ID

    client = await env.client()
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=client.namespace))
    if CUSTOMER_ID.name not in listed.custom_attributes:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={CUSTOMER_ID.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
            )
        )
    tag = uuid.uuid4().hex[:8]
    ids = {}
    for name, paused in [("a", True), ("b", False)]:
        ids[name] = sid(f"q{name}")
        await client.create_schedule(
            ids[name],
            Schedule(
                action=greeter_action(env, f"{ids[name]}-wf"),
                spec=ScheduleSpec(cron_expressions=["0 0 1 1 *"]),
                state=ScheduleState(paused=paused),
            ),
            search_attributes=TypedSearchAttributes([SearchAttributePair(CUSTOMER_ID, f"{tag}-{name}")]),
        )

    async def listed_ids(query: str) -> list[str]:
        return sorted([s.id async for s in await client.list_schedules(query=query)])

    mine = f"{CUSTOMER_ID.name} IN ('{tag}-a', '{tag}-b')"
    assert await wait_until(lambda: _eq(listed_ids(mine), sorted(ids.values())), what="both listed", timeout=15)
    assert await wait_until(
        lambda: _eq(listed_ids(f"{mine} AND TemporalSchedulePaused = true"), [ids["a"]]), what="the paused one", timeout=15
    )
    for schedule_id in ids.values():
        await client.get_schedule_handle(schedule_id).delete()


async def _eq(coro, expected) -> bool:
    got = await coro
    return got == expected


@pytest.mark.deadline(40)
async def test_limited_actions_stop_after_the_last_one(env):
    client = await env.client()
    schedule_id = sid("limited")
    async with env.worker(client):
        handle = await client.create_schedule(
            schedule_id,
            Schedule(
                action=greeter_action(env, f"{schedule_id}-wf"),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
                state=ScheduleState(limited_actions=True, remaining_actions=2),
            ),
        )
        described = await wait_until(lambda: _with_actions(handle, 2), what="two runs", timeout=20)
        await asyncio.sleep(3)
        described = await handle.describe()
        await handle.delete()
    assert described.info.num_actions == 2
    assert described.schedule.state.remaining_actions == 0
    assert described.info.next_action_times == []
