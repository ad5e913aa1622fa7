import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities, Transfer } from '../activities';

/**
 * The saga's retry policy: waits of 1 s, then 2 s (×2), then 2 s again (the maximum interval,
 * not 4 s). Temporal fires timers no sooner than about a second, so smaller intervals would not
 * show the backoff.
 */
export const SAGA_RETRY = {
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '2s',
  maximumAttempts: 4,
} as const;

const bank = proxyActivities<Activities>({ startToCloseTimeout: '10s', retry: SAGA_RETRY });

/** Withdraw, deposit, a step that always fails; then undo what was done, newest first, and fail. */
export async function transferMoney(t: Transfer): Promise<string> {
  const compensations: Array<() => Promise<void>> = [];
  try {
    await bank.withdraw(t);
    compensations.unshift(() => bank.undoWithdraw(t));
    await bank.deposit(t);
    compensations.unshift(() => bank.undoDeposit(t));
    await bank.stepWithError(t);
    return `transferred ${t.amount} from ${t.from} to ${t.to}`;
  } catch (err) {
    for (const compensate of compensations) await compensate();
    throw ApplicationFailure.create({
      type: 'TransferFailed',
      message: `transfer of ${t.amount} failed; compensated ${compensations.length} step(s)`,
      nonRetryable: true,
      cause: err as Error,
    });
  }
}
