import assert from 'node:assert/strict';
import { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const EventType = temporal.api.enums.v1.EventType;

/** The rejection of `promise`; fails the test if it resolves. */
export async function rejectionOf(promise: Promise<unknown>, what = 'the call'): Promise<Error> {
  try {
    const value = await promise;
    assert.fail(`${what} succeeded with ${JSON.stringify(value)}; a failure was expected`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return err as Error;
  }
}

/** The workflow's history as event type names without the EVENT_TYPE_ prefix. */
export async function eventTypes(handle: WorkflowHandle): Promise<string[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).map((e) => EventType[e.eventType ?? 0].replace(/^EVENT_TYPE_/, ''));
}

export async function historyEvents(handle: WorkflowHandle) {
  return (await handle.fetchHistory()).events ?? [];
}

/** Asserts `err` is an instance of `type` (naming what it was otherwise) and returns it typed. */
export function assertIs<T>(err: unknown, type: abstract new (...args: never[]) => T, what: string): T {
  if (!(err instanceof type)) {
    const name = err instanceof Error ? `${err.name}: ${err.message}` : JSON.stringify(err);
    assert.fail(`${what}: expected ${type.name}, got ${name}`);
  }
  return err;
}
