"""The official `temporal` CLI on the admin surface: `operator nexus endpoint …`,
`task-queue config get/set` (and the rate limit it sets, seen by a worker), and the
deprecated worker-versioning commands, which Temporal's dev server refuses."""

from __future__ import annotations

import uuid

from suite import activities
from suite.cli import Cli, cli  # noqa: F401  (the fixture)
from suite.workflows import ParallelStamps


def test_nexus_endpoint_create_get_list_update_delete(cli: Cli):
    name = f"ep-{uuid.uuid4().hex[:8]}"
    out = cli.run("operator", "nexus", "endpoint", "create", "--name", name,
                  "--target-namespace", cli.namespace, "--target-task-queue", "nexus-q",
                  "--description", "first").stdout
    assert f"Endpoint {name} successfully created." in out, out
    again = cli.run("operator", "nexus", "endpoint", "create", "--name", name, "--target-url", "http://localhost:1",
                    check=False)
    assert again.returncode == 1 and "already registered" in again.stderr, again.stderr

    got = cli.json("operator", "nexus", "endpoint", "get", "--name", name)
    assert got["spec"]["name"] == name and got["version"] == "1", got
    assert got["spec"]["target"]["worker"] == {"namespace": cli.namespace, "taskQueue": "nexus-q"}
    assert got["urlPrefix"] == f"/nexus/endpoints/{got['id']}/services"
    assert "createdTime" in got
    listed = cli.jsonl("operator", "nexus", "endpoint", "list")
    assert got["id"] in [e["id"] for e in listed]

    out = cli.run("operator", "nexus", "endpoint", "update", "--name", name,
                  "--target-url", "https://example.com/nexus", "--unset-description").stdout
    assert f"Endpoint {name} successfully updated." in out, out
    updated = cli.json("operator", "nexus", "endpoint", "get", "--name", name)
    assert updated["version"] == "2" and "lastModifiedTime" in updated, updated
    assert updated["spec"]["target"] == {"external": {"url": "https://example.com/nexus"}}
    assert "description" not in updated["spec"]

    bad = cli.run("operator", "nexus", "endpoint", "create", "--name", "-bad",
                  "--target-namespace", "no-such-namespace-x", "--target-task-queue", "q", check=False)
    assert bad.returncode == 1 and "could not verify namespace referenced by target exists" in bad.stderr, bad.stderr
    bad = cli.run("operator", "nexus", "endpoint", "create", "--name", "-bad", "--target-url", "ftp://x", check=False)
    assert bad.returncode == 1, bad.stderr
    assert "endpoint name must match the regex" in bad.stderr and 'invalid target URL scheme: "ftp"' in bad.stderr

    out = cli.run("operator", "nexus", "endpoint", "delete", "--name", name).stdout
    assert f"Endpoint {name} successfully deleted" in out, out
    gone = cli.run("operator", "nexus", "endpoint", "get", "--name", name, check=False)
    assert gone.returncode == 1 and "endpoint not found" in gone.stderr, gone.stderr


def test_task_queue_config_set_get_and_errors(cli: Cli):
    queue = f"cfg-{uuid.uuid4().hex[:8]}"
    none = cli.run("task-queue", "config", "get", "--task-queue", queue, "--task-queue-type", "activity").stdout
    assert "No configuration found" in none, none
    out = cli.run("task-queue", "config", "set", "--task-queue", queue, "--task-queue-type", "activity",
                  "--queue-rps-limit", "3.5", "--queue-rps-limit-reason", "why",
                  "--fairness-key-weight", "gold=2.5").stdout
    assert "Successfully updated task queue configuration" in out, out
    config = cli.json("task-queue", "config", "get", "--task-queue", queue, "--task-queue-type", "activity")
    assert config["queueRateLimit"]["rateLimit"]["requestsPerSecond"] == 3.5, config
    assert config["queueRateLimit"]["metadata"]["reason"] == "why"
    assert "updateTime" in config["queueRateLimit"]["metadata"]
    assert config["fairnessWeightOverrides"] == {"gold": 2.5}
    # Back to the default: the limit goes, the metadata of the change stays.
    cli.run("task-queue", "config", "set", "--task-queue", queue, "--task-queue-type", "activity",
            "--queue-rps-limit", "default")
    config = cli.json("task-queue", "config", "get", "--task-queue", queue, "--task-queue-type", "activity")
    assert "rateLimit" not in config["queueRateLimit"], config
    described = cli.json("task-queue", "describe", "--task-queue", queue, "--task-queue-type", "activity")
    assert described is not None
    # A workflow queue takes no rate limit (the CLI refuses before asking; the server too).
    refused = cli.run("task-queue", "config", "set", "--task-queue", queue, "--task-queue-type", "workflow",
                      "--queue-rps-limit", "1", check=False)
    assert refused.returncode == 1 and "not allowed" in refused.stderr, refused.stderr


def test_deprecated_versioning_commands_are_refused_as_on_the_dev_server(cli: Cli):
    for args, message in [
        (["task-queue", "get-build-ids", "--task-queue", "q"], "Worker versioning v0.1"),
        (["task-queue", "update-build-ids", "add-new-default", "--task-queue", "q", "--build-id", "b1"],
         "Worker versioning v0.1"),
        (["task-queue", "get-build-id-reachability", "--build-id", "b1"], "Worker versioning v0.2"),
        (["task-queue", "versioning", "get-rules", "--task-queue", "q"], "Worker versioning v0.2"),
    ]:
        done = cli.run(*args, check=False)
        assert done.returncode == 1, (args, done.stdout)
        assert f"{message} " in done.stderr and "is disabled on this namespace." in done.stderr, (args, done.stderr)


async def test_a_queue_rate_limit_spaces_out_activity_dispatch(env, cli: Cli):
    """A 2-per-second limit on the activity queue: six activities scheduled at once start over
    at least a second (a burst, then the rate); unlimited, they start together."""
    from temporalio.client import Client

    client = await Client.connect(env.address, namespace=cli.namespace)
    cli.run("task-queue", "config", "set", "--task-queue", env.task_queue, "--task-queue-type", "activity",
            "--queue-rps-limit", "2")
    async with env.worker(client, activities=[activities.stamp], workflows=[ParallelStamps]):
        stamps = await client.execute_workflow(ParallelStamps.run, 6, id=env.workflow_id(), task_queue=env.task_queue)
    spread = max(stamps) - min(stamps)
    assert spread >= 0.9, f"six activities at 2/s started within {spread:.2f} s"
    cli.run("task-queue", "config", "set", "--task-queue", env.task_queue, "--task-queue-type", "activity",
            "--queue-rps-limit", "default")
    async with env.worker(client, activities=[activities.stamp], workflows=[ParallelStamps]):
        stamps = await client.execute_workflow(
            ParallelStamps.run, 6, id=env.workflow_id("unlimited"), task_queue=env.task_queue
        )
    assert max(stamps) - min(stamps) < 0.9, stamps


async def test_activity_commands_single_and_batch(env, cli: Cli):
    """`temporal activity pause/update-options` on one workflow (the …ActivityExecution RPCs)
    and `activity unpause --query` (a batch job)."""
    import asyncio

    from temporalio.client import Client

    from suite.support import wait_until
    from suite.workflows import OperatedActivity

    client = await Client.connect(env.address, namespace=cli.namespace)
    key = env.workflow_id("cli-activity")
    async with env.worker(client, activities=[activities.fails_until_released], workflows=[OperatedActivity]):
        handle = await client.start_workflow(OperatedActivity.run, args=[key, 300, 0], id=key, task_queue=env.task_queue)
        await wait_until(lambda: activities.operated_calls.get(key, 0) >= 2, what="two attempts")
        await asyncio.to_thread(cli.run, "activity", "pause", "--workflow-id", key, "--activity-id", "operated",
                                "--reason", "looking")

        async def paused():
            pending = (await handle.describe()).raw_description.pending_activities
            return pending and pending[0].paused

        await wait_until(paused, what="the activity paused")
        out = (await asyncio.to_thread(cli.run, "activity", "update-options", "--workflow-id", key,
                                       "--activity-id", "operated", "--start-to-close-timeout", "20s")).stdout
        assert "20s" in out, out
        pending = (await handle.describe()).raw_description.pending_activities[0]
        assert pending.activity_options.start_to_close_timeout.seconds == 20
        activities.operated_released.add(key)
        out = (await asyncio.to_thread(cli.run, "activity", "unpause", "--query", f"WorkflowId = '{key}'",
                                       "--yes")).stdout
        assert "Started batch for job ID:" in out, out
        assert (await handle.result())["attempt"] >= 2
