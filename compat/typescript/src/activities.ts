/**
 * Every activity of the suite. Each records what it did in the ledger under its workflow's id,
 * so a test can check attempts, order and cancellations.
 */
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { record } from './ledger';

export interface Transfer {
  from: string;
  to: string;
  amount: number;
}

export interface HeartbeatUntilCancelled {
  /** How long the activity "cleans up" after it saw its cancellation. */
  cleanupMs: number;
  /** Return normally after the cancellation instead of rethrowing it. */
  swallow: boolean;
  /** Finish normally after this long if no cancellation arrived. */
  limitMs: number;
}

function workflowId(): string {
  return Context.current().info.workflowExecution!.workflowId;
}

function note(entry: string): void {
  record(workflowId(), entry);
}

/** A plain timer: unlike Context.sleep it ignores cancellation. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function createActivities(client: Client) {
  return {
    // --- the money-transfer saga ---
    async withdraw(t: Transfer): Promise<void> {
      note(`withdraw ${t.amount} from ${t.from}`);
    },
    async deposit(t: Transfer): Promise<void> {
      note(`deposit ${t.amount} to ${t.to}`);
    },
    async stepWithError(_t: Transfer): Promise<void> {
      note(`step with error, attempt ${Context.current().info.attempt}`);
      throw ApplicationFailure.create({ message: 'this step always fails', type: 'StepFailed' });
    },
    async undoDeposit(t: Transfer): Promise<void> {
      note(`undo deposit ${t.amount} to ${t.to}`);
    },
    async undoWithdraw(t: Transfer): Promise<void> {
      note(`undo withdraw ${t.amount} from ${t.from}`);
    },

    // --- retries and failures ---
    async failUntilAttempt(succeedOn: number): Promise<number> {
      const { attempt } = Context.current().info;
      note(`attempt ${attempt}`);
      if (attempt < succeedOn) throw ApplicationFailure.create({ message: `attempt ${attempt} fails`, type: 'Flaky' });
      return attempt;
    },
    async failNonRetryable(): Promise<never> {
      note(`attempt ${Context.current().info.attempt}`);
      throw ApplicationFailure.nonRetryable('card declined', 'CardDeclined', { last4: '4242' });
    },
    async failWithType(type: string): Promise<never> {
      note(`attempt ${Context.current().info.attempt}`);
      throw ApplicationFailure.create({ message: `failed with ${type}`, type });
    },

    // --- heartbeats ---
    /** Attempt 1 heartbeats progress 1..3 and fails; attempt 2 returns the details it was given. */
    async heartbeatThenFailOnce(): Promise<unknown> {
      const ctx = Context.current();
      note(`attempt ${ctx.info.attempt}, heartbeat details ${JSON.stringify(ctx.info.heartbeatDetails ?? null)}`);
      if (ctx.info.attempt === 1) {
        for (let progress = 1; progress <= 3; progress++) {
          ctx.heartbeat({ progress });
          await pause(50);
        }
        throw ApplicationFailure.create({ message: 'crashed after progress 3', type: 'Crash' });
      }
      return ctx.info.heartbeatDetails;
    },
    /** Heartbeats once, then goes quiet for longer than its heartbeat timeout. */
    async heartbeatOnceThenStall(stallMs: number): Promise<string> {
      Context.current().heartbeat('stalled at step 1');
      note('heartbeat sent');
      await pause(stallMs);
      note('woke up');
      return 'too late';
    },
    /** Tells its workflow it started, then heartbeats every 100 ms until cancelled or `limitMs`. */
    async heartbeatUntilCancelled(o: HeartbeatUntilCancelled): Promise<string> {
      const ctx = Context.current();
      const handle = client.workflow.getHandle(workflowId());
      await handle.signal('activityStarted');
      note('activity started');
      const until = Date.now() + o.limitMs;
      try {
        for (let beat = 1; Date.now() < until; beat++) {
          ctx.heartbeat(beat);
          await ctx.sleep(100);
        }
      } catch (err) {
        if (!(err instanceof CancelledFailure)) throw err;
        const details = ctx.cancellationDetails;
        note(`activity cancelled${details?.cancelRequested ? ' (cancel requested)' : ''}${details?.notFound ? ' (not found)' : ''}`);
        await pause(o.cleanupMs);
        note('activity cleanup done');
        await handle.signal('activityFinished');
        if (o.swallow) return 'swallowed the cancellation';
        throw err;
      }
      note('activity finished uncancelled');
      await handle.signal('activityFinished');
      return 'finished';
    },

    // --- timeouts ---
    /** Sleeps, ignoring cancellation (for start-to-close timeouts). */
    async sleepIgnoringCancel(ms: number): Promise<string> {
      note(`attempt ${Context.current().info.attempt} sleeping ${ms} ms`);
      await pause(ms);
      return 'slept';
    },

    // --- plain steps ---
    async record(entry: string): Promise<void> {
      note(entry);
    },
    async echo<T>(value: T): Promise<T> {
      note(`echo ${JSON.stringify(value)}`);
      return value;
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
