/**
 * The one server, connection, workflow bundle and shared worker of a test run.
 *
 * `setUp()` runs once before every test (see suite.test.ts): it starts tempora (or uses
 * TEMPORA_ADDRESS), connects, bundles the workflow code once and starts a shared worker that
 * serves every workflow and activity on one task queue. Tests that need a worker of their own
 * (codec, shutdown, restart) create one with `newWorker`, reusing the same bundle.
 * `tearDown()` stops all of it; the server is also killed on process exit and signals, and a
 * watchdog shell kills it if this process dies without cleaning up.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, ClientOptions, Connection } from '@temporalio/client';
import {
  bundleWorkflowCode,
  DefaultLogger,
  LogLevel,
  NativeConnection,
  Runtime,
  Worker,
  WorkerOptions,
  WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { createActivities } from './activities';
import { activityInterceptors } from './interceptors';

export const NAMESPACE = 'default';
const STARTUP_TIMEOUT_MS = 30_000;

export interface Env {
  /** host:port of the server under test. */
  address: string;
  /** 'tempora' when this run started tempora, 'external' with TEMPORA_ADDRESS. */
  server: 'tempora' | 'external';
  connection: Connection;
  client: Client;
  nativeConnection: NativeConnection;
  bundle: WorkflowBundleWithSourceMap;
  /** The task queue the shared worker polls. */
  taskQueue: string;
}

let current: Env | undefined;
let sharedWorker: { worker: Worker; running: Promise<void> } | undefined;
let serverProcess: ChildProcess | undefined;
let serverLog: string | undefined;

export function env(): Env {
  if (!current) throw new Error('harness not set up: tests must run through suite.test.js');
  return current;
}

/** A workflow id (or task queue name) no other test or run uses. */
export function uid(name: string): string {
  return `${name}-${randomUUID().slice(0, 8)}`;
}

export async function setUp(): Promise<Env> {
  // SDK and core logs at ERROR by default (COMPAT_LOG_LEVEL=WARN|INFO|DEBUG for more): the
  // timeout tests make the worker warn about activities that finish after their workflow did.
  const level = (process.env.COMPAT_LOG_LEVEL ?? 'ERROR') as LogLevel;
  Runtime.install({ logger: new DefaultLogger(level), telemetryOptions: { logging: { filter: { core: level, other: level } } } });
  const external = process.env.TEMPORA_ADDRESS;
  const address = external ?? (await startTempora());
  const connection = await connectWhenReady(address);
  const client = new Client({ connection, namespace: NAMESPACE });
  const nativeConnection = await NativeConnection.connect({ address });
  const started = Date.now();
  const bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('./workflows'),
    workflowInterceptorModules: [require.resolve('./workflows/interceptors')],
    logger: new DefaultLogger('WARN'),
  });
  log(`workflow code bundled once in ${Date.now() - started} ms`);
  current = {
    address,
    server: external ? 'external' : 'tempora',
    connection,
    client,
    nativeConnection,
    bundle,
    taskQueue: uid('compat-ts-shared'),
  };
  const worker = await newWorker({ taskQueue: current.taskQueue });
  sharedWorker = { worker, running: worker.run() };
  return current;
}

export async function tearDown(): Promise<void> {
  try {
    if (sharedWorker) {
      sharedWorker.worker.shutdown();
      await withDeadline(sharedWorker.running, 20_000, 'shared worker shutdown').catch((err) => log(String(err)));
    }
    await current?.nativeConnection.close().catch(() => undefined);
    await current?.connection.close().catch(() => undefined);
  } finally {
    stopTempora();
    // A worker left running by a timed-out test must not keep the process (and CI) alive.
    setTimeout(() => {
      log('exiting: something still held the process 10 s after tear-down');
      process.exit();
    }, 10_000).unref();
  }
}

/**
 * A worker on its own task queue with the run's bundle and every activity. Not started: call
 * `run()`/`runUntil()`; shut it down in the test.
 */
export async function newWorker(options: Partial<WorkerOptions> & { taskQueue: string }): Promise<Worker> {
  const e = env();
  return Worker.create({
    connection: e.nativeConnection,
    namespace: NAMESPACE,
    workflowBundle: e.bundle,
    activities: createActivities(e.client),
    interceptors: { activity: activityInterceptors },
    // Small numbers keep a 2-core machine responsive; plenty for these tests.
    maxConcurrentWorkflowTaskExecutions: 20,
    maxConcurrentActivityTaskExecutions: 50,
    ...options,
  });
}

/** Resolves with `promise`, or rejects after `ms` naming `what`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every 100 ms until it returns a value that is not undefined/false. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, ms = 10_000): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`${what}: not true within ${ms} ms${last ? ` (last error: ${last})` : ''}`);
    await sleep(100);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A client with other options (interceptors, data converter) on the run's connection. */
export function clientWith(options: Omit<ClientOptions, 'connection' | 'namespace'>): Client {
  return new Client({ connection: env().connection, namespace: NAMESPACE, ...options });
}

export function log(message: string): void {
  process.stderr.write(`# compat: ${message}\n`);
}

// --- the server ---

function temporaBinary(): string {
  const fromEnv = process.env.TEMPORA_BIN;
  const bin = fromEnv ? path.resolve(fromEnv) : path.resolve(__dirname, '../../../target/debug/tempora');
  if (!fs.existsSync(bin)) {
    throw new Error(
      `tempora binary not found at ${bin}` +
        (fromEnv ? ' (TEMPORA_BIN)' : ' (default; build it or set TEMPORA_BIN, or TEMPORA_ADDRESS for a running server)'),
    );
  }
  return bin;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function startTempora(): Promise<string> {
  const bin = temporaBinary();
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tempora-compat-ts-'));
  serverLog = process.env.TEMPORA_LOG ?? path.join(dir, 'tempora.log');
  const out = fs.openSync(serverLog, 'a');
  // The watchdog shell kills tempora when this process goes away, even on SIGKILL.
  const watchdog =
    '"$0" server start --ip 127.0.0.1 --port "$1" --db :memory: --http-port 0 --ui-port 0 & srv=$!; ' +
    'trap \'kill $srv 2>/dev/null; wait $srv; exit 0\' TERM INT; ' +
    'while kill -0 "$2" 2>/dev/null && kill -0 $srv 2>/dev/null; do sleep 1; done; ' +
    'kill $srv 2>/dev/null; wait $srv';
  serverProcess = spawn('bash', ['-c', watchdog, bin, String(port), String(process.pid)], {
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  const exited = new Promise<never>((_, reject) =>
    serverProcess!.once('exit', (code) => reject(new Error(`tempora exited (code ${code}) before accepting connections; log: ${serverLog}`))),
  );
  exited.catch(() => undefined);
  process.once('exit', stopTempora);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stopTempora();
      process.exit(130);
    });
  }
  const address = `127.0.0.1:${port}`;
  await Promise.race([waitForPort(port, STARTUP_TIMEOUT_MS), exited]);
  log(`started ${bin} at ${address}; log: ${serverLog}`);
  return address;
}

function stopTempora(): void {
  if (serverProcess && serverProcess.exitCode === null) {
    serverProcess.kill('SIGTERM');
    log(`stopped tempora; its log: ${serverLog}`);
  }
  serverProcess = undefined;
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`tempora did not accept connections on ${port} within ${ms} ms; log: ${serverLog}`);
    await sleep(50);
  }
}

/** Connects and waits until the server answers DescribeNamespace for `default`. */
async function connectWhenReady(address: string): Promise<Connection> {
  const until = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2_000 });
      await connection.workflowService.describeNamespace({ namespace: NAMESPACE });
      return connection;
    } catch (err) {
      if (Date.now() > until) throw new Error(`server at ${address} not ready within ${STARTUP_TIMEOUT_MS} ms: ${err}`);
      await sleep(200);
    }
  }
}
