import { CancellationScope, condition, defineSignal, isCancellation, setHandler, sleep } from '@temporalio/workflow';

/** Sleeps `ms` on a durable timer; returns the workflow clock's elapsed time. */
export async function sleeper(ms: number): Promise<number> {
  const before = Date.now();
  await sleep(ms);
  return Date.now() - before;
}

export const flag = defineSignal('flag');

/** Waits up to `timeout` for the `flag` signal; true if it came. */
export async function waitForFlag(timeoutMs: number): Promise<boolean> {
  let raised = false;
  setHandler(flag, () => void (raised = true));
  return condition(() => raised, timeoutMs);
}

/** Starts an hour-long timer in a scope and cancels the scope. */
export async function cancelTimer(): Promise<string> {
  const scope = new CancellationScope();
  const timer = scope.run(() => sleep('1 hour'));
  await sleep(50);
  scope.cancel();
  try {
    await timer;
    return 'timer fired';
  } catch (err) {
    if (isCancellation(err)) return 'timer cancelled';
    throw err;
  }
}
