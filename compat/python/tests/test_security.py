"""Production security through the official SDK, CLI and HTTP clients: TLS and mutual TLS on
every port, API keys and JWTs with Temporal's roles, namespace isolation, per-namespace rate
limits. Each test runs a tempora of its own with the flags under test."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.enums.v1 import ResourceExhaustedCause
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    ListBatchOperationsRequest,
    ListNamespacesRequest,
    ListSchedulesRequest,
    PollWorkflowTaskQueueRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, TLSConfig
from temporalio.worker import Worker

from suite import workflows
from suite.activities import Outside
from suite.certs import Certs, Signer, make_certs, write_jwks
from suite.cli import TEMPORAL
from suite.servers import binary, tempora


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def tls(certs: Certs, *, client: bool = False, rogue: bool = False) -> TLSConfig:
    cert, key = (certs.rogue_cert, certs.rogue_key) if rogue else (certs.client_cert, certs.client_key)
    return TLSConfig(
        server_root_ca_cert=certs.ca.read_bytes(),
        domain="localhost",
        client_cert=cert.read_bytes() if client or rogue else None,
        client_private_key=key.read_bytes() if client or rogue else None,
    )


def _json(body: bytes):
    try:
        return json.loads(body or b"{}")
    except ValueError:
        return body.decode()


def https_get(url: str, certs: Certs, *, client: bool = False, token: str | None = None) -> tuple[int, dict]:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if client:
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as e:
        return e.code, _json(e.read())


def temporal(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TEMPORAL), *args], capture_output=True, text=True, timeout=60)


async def run_greeter(client: Client, name: str) -> str:
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[workflows.Greeter]):
        return await client.execute_workflow(
            workflows.Greeter.run, name, id=f"greet-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )


async def refused(call, status: RPCStatusCode) -> RPCError:
    with pytest.raises(RPCError) as caught:
        await call
    assert caught.value.status == status, caught.value
    return caught.value


# --- TLS ---------------------------------------------------------------------------------------


async def test_tls_serves_sdk_cli_and_https_and_refuses_plain_clients(certs):
    with tempora("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)) as server:
        client = await Client.connect(server.address, tls=tls(certs))
        assert await run_greeter(client, "tls") == "hello, tls"

        listed = temporal("workflow", "list", "--address", server.address, "--tls-ca-path", str(certs.ca),
                          "--tls-server-name", "localhost", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        assert "greet-" in listed.stdout

        status, body = https_get(f"https://localhost:{server.http_address.split(':')[1]}/api/v1/namespaces/default",
                                 certs)
        assert (status, body["namespaceInfo"]["name"]) == (200, "default")
        status, _ = https_get(f"https://localhost:{server.ui_address.split(':')[1]}/healthz", certs)
        assert status == 200

        with pytest.raises(Exception):
            await asyncio.wait_for(Client.connect(server.address), 15)
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            urllib.request.urlopen(f"http://{server.http_address}/api/v1/namespaces", timeout=5)


async def test_mutual_tls_needs_a_client_certificate_from_the_configured_ca(certs):
    with tempora("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
                 "--tls-client-ca", str(certs.ca)) as server:
        client = await Client.connect(server.address, tls=tls(certs, client=True))
        assert await run_greeter(client, "mtls") == "hello, mtls"

        for without in (tls(certs), tls(certs, rogue=True)):
            with pytest.raises(Exception):
                await asyncio.wait_for(Client.connect(server.address, tls=without), 15)

        common = ["--address", server.address, "--tls-ca-path", str(certs.ca), "--tls-server-name", "localhost"]
        listed = temporal("workflow", "list", *common, "--tls-cert-path", str(certs.client_cert),
                          "--tls-key-path", str(certs.client_key))
        assert listed.returncode == 0, listed.stderr
        assert temporal("workflow", "list", *common).returncode != 0

        port = server.http_address.split(":")[1]
        status, body = https_get(f"https://localhost:{port}/api/v1/namespaces/default", certs, client=True)
        assert (status, body["namespaceInfo"]["name"]) == (200, "default")
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            https_get(f"https://localhost:{port}/api/v1/namespaces/default", certs)


# --- API keys, roles and namespace isolation ---------------------------------------------------

KEYS = {
    "root": "temporal-system:admin",
    "writer": "default:write",
    "reader": "default:read",
    "worker": "default:worker",
    "admin": "default:admin",
    "other": "other:admin",
}


@pytest.fixture(scope="module")
def secured(certs):
    args = ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key), "-n", "other"]
    for key, permission in KEYS.items():
        args += ["--api-key", f"{key}={permission}"]
    with tempora(*args) as server:
        yield server


async def connect(server, certs, key: str | None, namespace: str = "default") -> Client:
    return await Client.connect(server.address, namespace=namespace, tls=tls(certs), api_key=key)


async def test_each_role_can_do_what_temporal_grants_it_and_nothing_more(secured, certs):
    writer = await connect(secured, certs, "writer")
    reader = await connect(secured, certs, "reader")
    worker = await connect(secured, certs, "worker")
    anonymous = await connect(secured, certs, None)
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"

    # No credentials, or a key the server does not know: UNAUTHENTICATED.
    err = await refused(anonymous.start_workflow(workflows.Greeter.run, "x", id="anon", task_queue=task_queue),
                        RPCStatusCode.UNAUTHENTICATED)
    assert "no credentials" in err.message
    stranger = await connect(secured, certs, "not-a-key")
    await refused(stranger.count_workflows(), RPCStatusCode.UNAUTHENTICATED)

    # A reader reads but does not start; a writer starts; a worker-only key runs the workflow.
    err = await refused(reader.start_workflow(workflows.Greeter.run, "x", id="by-reader", task_queue=task_queue),
                        RPCStatusCode.PERMISSION_DENIED)
    assert "StartWorkflowExecution needs the write role on namespace default" in err.message
    workflow_id = f"roles-{uuid.uuid4().hex[:8]}"
    handle = await writer.start_workflow(workflows.Greeter.run, "roles", id=workflow_id, task_queue=task_queue)
    async with Worker(worker, task_queue=task_queue, workflows=[workflows.Greeter]):
        assert await handle.result() == "hello, roles"
    assert (await reader.get_workflow_handle(workflow_id).describe()).id == workflow_id
    assert [w.id async for w in reader.list_workflows(f"WorkflowId = '{workflow_id}'")] == [workflow_id]

    # The worker key can neither start, signal nor list workflows.
    await refused(worker.start_workflow(workflows.Greeter.run, "x", id="by-worker", task_queue=task_queue),
                  RPCStatusCode.PERMISSION_DENIED)
    await refused(worker.get_workflow_handle(workflow_id).signal("nudge"), RPCStatusCode.PERMISSION_DENIED)
    await refused(worker.count_workflows(), RPCStatusCode.PERMISSION_DENIED)

    # Namespace administration needs the admin role (CLI with --api-key).
    common = ["--address", secured.address, "--tls-ca-path", str(certs.ca), "--tls-server-name", "localhost",
              "--namespace", "default"]
    update = ["operator", "namespace", "update", "--description", "secured", *common]
    denied = temporal(*update, "--api-key", "writer")
    assert denied.returncode != 0 and "UpdateNamespace needs the admin role" in denied.stderr, denied
    done = temporal(*update, "--api-key", "admin")
    assert done.returncode == 0, done.stderr
    listed = temporal("workflow", "list", *common, "--api-key", "reader", "-o", "json")
    assert listed.returncode == 0 and workflow_id in listed.stdout, listed.stderr

    # The cluster-wide namespace list needs a system role.
    await refused(writer.workflow_service.list_namespaces(ListNamespacesRequest()), RPCStatusCode.PERMISSION_DENIED)
    root = await connect(secured, certs, "root")
    assert (await root.get_workflow_handle(workflow_id).describe()).id == workflow_id


async def test_a_key_for_one_namespace_sees_nothing_of_another(secured, certs):
    writer = await connect(secured, certs, "writer")
    other = await connect(secured, certs, "other", namespace="other")
    intruder = await connect(secured, certs, "other", namespace="default")
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    outside = Outside()
    workflow_id = f"isolated-{uuid.uuid4().hex[:8]}"
    async with Worker(writer, task_queue=task_queue, workflows=[workflows.CompletedOutside],
                      activities=[outside.completed_outside]):
        handle = await writer.start_workflow(workflows.CompletedOutside.run, id=workflow_id, task_queue=task_queue)
        token = await asyncio.wait_for(outside.tokens.get(), 20)

        # Every way in from the other namespace's key is refused.
        target = intruder.get_workflow_handle(workflow_id)
        for call in [
            target.describe(),
            target.fetch_history(),
            target.signal("anything"),
            target.cancel(),
            target.terminate(),
            intruder.count_workflows(),
            intruder.workflow_service.list_schedules(ListSchedulesRequest(namespace="default")),
            intruder.workflow_service.list_batch_operations(ListBatchOperationsRequest(namespace="default")),
            intruder.get_async_activity_handle(task_token=token).complete("stolen"),
        ]:
            await refused(call, RPCStatusCode.PERMISSION_DENIED)
        with pytest.raises(RPCError) as caught:
            async for _ in intruder.list_workflows():
                pass
        assert caught.value.status == RPCStatusCode.PERMISSION_DENIED

        # The same through the HTTP API and the UI's own endpoint.
        port = secured.http_address.split(":")[1]
        status, body = https_get(f"https://localhost:{port}/api/v1/namespaces/default/workflows", certs,
                                 token="other")
        assert status == 403, body
        status, body = https_get(f"https://localhost:{port}/api/v1/namespaces/default/workflows", certs)
        assert status == 401, body
        status, body = https_get(f"https://localhost:{port}/api/v1/namespaces/default/workflows", certs,
                                 token="writer")
        assert status == 200 and workflow_id in json.dumps(body), body
        ui = secured.ui_address.split(":")[1]
        assert https_get(f"https://localhost:{ui}/ui/overview?namespace=default", certs, token="other")[0] == 403
        assert https_get(f"https://localhost:{ui}/ui/overview?namespace=default", certs, token="writer")[0] == 200

        # Its own namespace works, and holds nothing of default's.
        assert [w.id async for w in other.list_workflows()] == []
        await refused(other.get_workflow_handle(workflow_id).describe(), RPCStatusCode.NOT_FOUND)

        # A task token from default, presented in the other namespace, is refused as Temporal does.
        err = await refused(other.get_async_activity_handle(task_token=token).complete("stolen"),
                            RPCStatusCode.INVALID_ARGUMENT)
        assert err.message == "Operation requested with a token from a different namespace."

        # The rightful caller completes it.
        await writer.get_async_activity_handle(task_token=token).complete("by the owner")
        assert await handle.result() == "by the owner"


async def test_jwts_signed_by_a_jwks_key_carry_their_permissions(certs, tmp_path):
    signer, stranger = Signer.create(tmp_path, "key-1"), Signer.create(tmp_path, "key-2")
    jwks = write_jwks(tmp_path / "jwks.json", signer)
    with tempora("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
                 "--auth-jwks", str(jwks)) as server:
        writer = await connect(server, certs, signer.token(["default:write"]))
        assert await run_greeter(writer, "jwt") == "hello, jwt"

        reader = await connect(server, certs, signer.token(["default:read"]))
        await reader.count_workflows()
        await refused(reader.start_workflow(workflows.Greeter.run, "x", id="jwt-reader", task_queue="q"),
                      RPCStatusCode.PERMISSION_DENIED)

        expired = await connect(server, certs, signer.token(["default:write"], expires_in=-120))
        err = await refused(expired.count_workflows(), RPCStatusCode.UNAUTHENTICATED)
        assert "Expired" in err.message or "expired" in err.message, err.message
        forged = await connect(server, certs, stranger.token(["temporal-system:admin"]))
        await refused(forged.count_workflows(), RPCStatusCode.UNAUTHENTICATED)
        tampered = signer.token(["default:read"]).split(".")
        admin_claims = stranger.token(["temporal-system:admin"]).split(".")[1]
        sneaky = await connect(server, certs, ".".join([tampered[0], admin_claims, tampered[2]]))
        await refused(sneaky.count_workflows(), RPCStatusCode.UNAUTHENTICATED)


# --- rate limits -------------------------------------------------------------------------------


def exhausted_cause(err: RPCError) -> int:
    failure = ResourceExhaustedFailure()
    assert err.grpc_status.details[0].Unpack(failure)
    return failure.cause


async def test_a_namespace_over_its_request_rate_is_refused_and_the_others_go_on():
    with tempora("--rate-limit-rps", "5", "-n", "quiet") as server:
        client = await Client.connect(server.address)
        results = []
        for _ in range(20):
            try:
                await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"),
                                                                 retry=False)
                results.append(None)
            except RPCError as e:
                results.append(e)
        assert results[:5] == [None] * 5
        refusals = [e for e in results if e is not None]
        assert len(refusals) >= 10, results
        assert {(e.status, e.message) for e in refusals} == {
            (RPCStatusCode.RESOURCE_EXHAUSTED, "namespace rate limit exceeded")}
        assert exhausted_cause(refusals[0]) == ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT

        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="quiet"), retry=False)
        await asyncio.sleep(1.2)
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"), retry=False)
        # The SDK retries RESOURCE_EXHAUSTED by itself: a workflow still runs under the limit.
        assert await run_greeter(client, "slowly") == "hello, slowly"


async def test_concurrent_long_polls_per_namespace_are_limited():
    with tempora("--rate-limit-polls", "2") as server:
        client = await Client.connect(server.address)

        def poll():
            request = PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name="idle"))
            return client.workflow_service.poll_workflow_task_queue(request, retry=False)

        waiting = [asyncio.create_task(poll()) for _ in range(2)]
        await asyncio.sleep(0.5)
        err = await refused(poll(), RPCStatusCode.RESOURCE_EXHAUSTED)
        assert err.message == "namespace concurrent poller limit exceeded"
        assert exhausted_cause(err) == ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        await asyncio.sleep(0.3)
        # Cancelled polls give their places back.
        retry = asyncio.create_task(poll())
        await asyncio.sleep(0.5)
        assert not retry.done()
        retry.cancel()


# --- a cluster with TLS and authentication -----------------------------------------------------


def fresh_postgres() -> str:
    base = os.environ.get("TEMPORA_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("needs TEMPORA_TEST_POSTGRES_URL (a PostgreSQL database for the cluster's nodes)")
    name = f"tempora_secure_cluster_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", base, "-qc", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
    return f"{base.rsplit('/', 1)[0]}/{name}"


async def both_hold_shards(db: str) -> None:
    """Waits until the shards are shared by two nodes (the second one takes its share within a
    lease round or two), so calls cross nodes both ways."""
    for _ in range(100):
        owners = subprocess.run(["psql", db, "-Atc", "SELECT count(DISTINCT owner) FROM shard_leases "
                                 "WHERE owner IS NOT NULL AND expires_at > now()"],
                                check=True, capture_output=True, text=True).stdout.strip()
        if owners == "2":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the shards were not shared by the two nodes within 10 s (owners: {owners})")


def node_call(server, certs: Certs, secret: str | None, *, body: bool = False) -> str:
    """A raw node-to-node call (`tempora.cluster.v1.Node/Execute`, an empty message) over mutual
    TLS, as another node would make it; the gRPC status it got."""
    command = ["curl", "-sS", "-i", "--http2", "-X", "POST", "--cacert", str(certs.ca), "--cert",
               str(certs.client_cert), "--key", str(certs.client_key), "-H", "content-type: application/grpc",
               f"https://localhost:{server.address.rsplit(':', 1)[1]}/tempora.cluster.v1.Node/Execute"]
    if secret:
        command[1:1] = ["-H", f"tempora-node-secret: {secret}"]
    if body:
        # One empty message; only for a call that is served: a refused call is answered before
        # its body is read, which curl may report as a stream error while it still sends it.
        command[1:1] = ["--data-binary", "@-"]
    done = subprocess.run(command, input=b"\0\0\0\0\0", capture_output=True, timeout=30)
    answer = done.stdout.decode(errors="replace").lower()
    # In the headers (a refusal) or in the trailers, printed right after the binary body.
    status = re.search(r"grpc-status: *(\d+)", answer)
    return status.group(1) if status else f"no grpc-status ({done.returncode}): {answer!r} {done.stderr!r}"


async def test_a_cluster_with_mutual_tls_and_api_keys_serves_through_any_node_and_refuses_strangers(certs):
    db = fresh_postgres()
    tls_args = ["--tls-cert", str(certs.node_cert), "--tls-key", str(certs.node_key),
                "--tls-client-ca", str(certs.ca), "--cluster"]
    keys = [arg for key, permission in KEYS.items() for arg in ("--api-key", f"{key}={permission}")]
    secret = uuid.uuid4().hex

    def refused_at_start(*args: str) -> str:
        done = subprocess.run([str(binary()), "server", "start", "--port", "0", "--http-port", "0", "--ui-port", "0",
                               "--db", db, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0, done
        return done.stderr

    # Nodes with TLS or authentication must share a secret; with mutual TLS a node's
    # certificate is a client certificate too (it presents it to the others).
    assert "--cluster-secret" in refused_at_start(*tls_args, *keys)
    server_only = ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key), *tls_args[4:]]
    assert "clientAuth" in refused_at_start(*server_only, "--cluster-secret", secret)
    args = [*tls_args, *keys, "--cluster-secret", secret]
    with tempora(*args, db=db) as a, tempora(*args, db=db) as b:
        await both_hold_shards(db)

        async def connect_to(server, key: str | None) -> Client:
            return await Client.connect(server.address, namespace="default", tls=tls(certs, client=True),
                                        api_key=key)

        writer, worker, reader = await connect_to(a, "writer"), await connect_to(b, "worker"), await connect_to(b, "reader")
        task_queue = f"tq-{uuid.uuid4().hex[:8]}"
        # Started through one node, run by a worker on the other: runs of every node's shards.
        async with Worker(worker, task_queue=task_queue, workflows=[workflows.Greeter]):
            handles = [await writer.start_workflow(workflows.Greeter.run, f"n{i}", id=f"secure-{uuid.uuid4().hex[:8]}",
                                                   task_queue=task_queue) for i in range(8)]
            assert [await h.result() for h in handles] == [f"hello, n{i}" for i in range(8)]
        for h in handles:
            assert (await reader.get_workflow_handle(h.id).describe()).id == h.id
        # A registry call (the holder of the registries may be either node) with the caller's role.
        listed = await reader.workflow_service.list_schedules(ListSchedulesRequest(namespace="default"))
        assert list(listed.schedules) == []

        # Roles still hold across nodes, and a forged node header lets no one in.
        await refused(reader.start_workflow(workflows.Greeter.run, "x", id="by-reader", task_queue=task_queue),
                      RPCStatusCode.PERMISSION_DENIED)
        forged = await Client.connect(a.address, namespace="default", tls=tls(certs, client=True),
                                      rpc_metadata={"tempora-node-secret": "0" * 32, "tempora-forwarded": "1"})
        await refused(forged.count_workflows(), RPCStatusCode.UNAUTHENTICATED)

        # The node service answers only calls carrying the cluster's secret.
        assert node_call(a, certs, None) == "16"  # UNAUTHENTICATED
        assert node_call(a, certs, "0" * 32) == "16"
        assert node_call(a, certs, secret, body=True) == "0"  # served (the empty call answers its own error)
