"""The official `temporal` CLI operating workflows: batch jobs (`workflow terminate/signal
--query`, `batch list/describe/terminate`), `task-queue describe` and `list-partition`,
`operator namespace update/list`, `workflow show --reverse`, `operator cluster` commands.
Each test works in its own namespace."""

from __future__ import annotations

import time

from suite.cli import Cli, cli  # noqa: F401  (the fixture)


def wait_for(what: str, fetch, done, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what}: still {value!r} after {timeout:g} s")
        time.sleep(0.2)


def test_batch_terminate_by_query_then_describe_and_list(cli: Cli):
    for i in range(4):
        cli.start(f"b{i}", "Batched")
    cli.start("other", "Kept")
    out = cli.run("workflow", "terminate", "--query", "WorkflowType = 'Batched'", "--reason", "cleanup", "--yes").stdout
    assert "Started batch for job ID:" in out, out
    job_id = out.strip().rsplit(" ", 1)[-1]
    described = wait_for(
        "batch job", lambda: cli.json("batch", "describe", "--job-id", job_id),
        lambda d: d["state"] != "BATCH_OPERATION_STATE_RUNNING",
    )
    assert described["state"] == "BATCH_OPERATION_STATE_COMPLETED", described
    assert described["reason"] == "cleanup"
    assert int(described["totalOperationCount"]) == 4 and int(described["completeOperationCount"]) == 4
    assert cli.run("workflow", "count", "--query", "ExecutionStatus = 'Terminated'").stdout.strip() == "Total: 4"
    assert cli.ids("ExecutionStatus = 'Running'") == ["other"]
    listed = cli.json("batch", "list")
    assert [j["jobId"] for j in listed] == [job_id]
    # Stopping a finished job: the CLI reports it cannot find a running one.
    stopped = cli.run("batch", "terminate", "--job-id", job_id, "--reason", "late", check=False)
    assert stopped.returncode == 1 and f"could not find Batch Job '{job_id}'" in stopped.stderr, stopped.stderr


def test_batch_signal_by_query(cli: Cli):
    cli.start("s1", "Signalled")
    cli.start("s2", "Signalled")
    out = cli.run("workflow", "signal", "--query", "WorkflowType = 'Signalled'", "--name", "poke",
                  "--input", '"hello"', "--yes").stdout
    job_id = out.strip().rsplit(" ", 1)[-1]
    wait_for("signal job", lambda: cli.json("batch", "describe", "--job-id", job_id)["state"],
             lambda s: s == "BATCH_OPERATION_STATE_COMPLETED")
    for workflow_id in ("s1", "s2"):
        events = cli.json("workflow", "show", "--workflow-id", workflow_id)["events"]
        signalled = [e for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"]
        assert len(signalled) == 1, events


def test_workflow_show_reverse_lists_newest_first(cli: Cli):
    cli.start("rev", "Reversed")
    cli.run("workflow", "terminate", "--workflow-id", "rev", "--reason", "done")
    forward = [e["eventId"] for e in cli.json("workflow", "show", "--workflow-id", "rev")["events"]]
    backward = [e["eventId"] for e in cli.json("workflow", "show", "--workflow-id", "rev", "--reverse")["events"]]
    assert backward == list(reversed(forward)) and len(forward) >= 3


def test_task_queue_describe_and_partitions(cli: Cli):
    cli.start("t1", "Queued")
    described = cli.json("task-queue", "describe", "--task-queue", "cli-q")
    stats = {(s["taskQueueType"]): s for s in described["stats"]}
    assert int(stats["workflow"]["approximateBacklogCount"]) == 1, described
    text = cli.run("task-queue", "describe", "--task-queue", "cli-q").stdout
    assert "Task Queue Statistics" in text, text
    partitions = cli.run("task-queue", "list-partition", "--task-queue", "cli-q").stdout
    assert "Workflow Task Queue Partitions" in partitions and "cli-q" in partitions, partitions


def test_namespace_update_and_list(cli: Cli):
    cli.run("operator", "namespace", "update", "--namespace", cli.namespace, "--description", "payments",
            "--retention", "48h", "--data", "team=pay")
    described = cli.json("operator", "namespace", "describe", "--namespace", cli.namespace)
    assert described["namespaceInfo"]["description"] == "payments"
    assert described["namespaceInfo"]["data"] == {"team": "pay"}
    assert described["config"]["workflowExecutionRetentionTtl"] == "172800s"
    names = [n["namespaceInfo"]["name"] for n in cli.json("operator", "namespace", "list")]
    assert cli.namespace in names and "default" in names


def test_operator_cluster_commands(cli: Cli):
    assert cli.run("operator", "cluster", "health").stdout.strip() == "SERVING"
    system = cli.json("operator", "cluster", "system")
    assert system["capabilities"]["countGroupByExecutionStatus"] is True
    described = cli.json("operator", "cluster", "describe")
    assert described["clusterName"]


def test_operator_cluster_list_and_namespace_delete(cli: Cli):
    clusters = cli.json("operator", "cluster", "list")
    assert [c["clusterName"] for c in clusters] == ["active"], clusters
    cli.start("d1", "Doomed")
    out = cli.run("operator", "namespace", "delete", "--namespace", cli.namespace, "--yes").stdout
    assert f"Namespace {cli.namespace} has been deleted" in out, out
    gone = cli.run("operator", "namespace", "describe", "--namespace", cli.namespace, check=False)
    assert gone.returncode == 1 and "not found" in gone.stderr.lower(), gone.stderr
