import { condition, continueAsNew, defineSignal, setHandler } from '@temporalio/workflow';

/** Continues as new once per number, returning the numbers every run saw. */
export async function countdown(n: number, seen: number[] = []): Promise<{ seen: number[]; runs: number }> {
  const now = [...seen, n];
  if (n > 0) await continueAsNew<typeof countdown>(n - 1, now);
  return { seen: now, runs: now.length };
}

/** Returns the workflow clock at its first workflow task (epoch ms). */
export async function reportStart(): Promise<number> {
  return Date.now();
}

export const greet = defineSignal<[string]>('greet');

/** Returns when its first workflow task ran and the greetings it had by then. */
export async function greetedAtStart(): Promise<{ firstTaskAt: number; greetings: string[] }> {
  const greetings: string[] = [];
  setHandler(greet, (g) => void greetings.push(g));
  const firstTaskAt = Date.now();
  await condition(() => greetings.length > 0, '10s');
  return { firstTaskAt, greetings };
}

/** Never finishes on its own. */
export async function waitForever(): Promise<never> {
  await condition(() => false);
  throw new Error('unreachable');
}
