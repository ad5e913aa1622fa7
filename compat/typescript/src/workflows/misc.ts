import { condition, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';
import type { Activities } from '../activities';

const { echo, record } = proxyActivities<Activities>({ startToCloseTimeout: '10s' });

export const tagged = defineSignal<[string]>('tagged');

/** Waits for one `tagged` signal, then calls an activity; the interceptors add what they saw. */
export async function intercepted(): Promise<{ tags: string[]; fromActivity: string }> {
  const tags: string[] = [];
  setHandler(tagged, (t) => void tags.push(t));
  await condition(() => tags.length > 0, '20s');
  const fromActivity = await echo('ping');
  return { tags, fromActivity };
}

/** Sends its input through an activity and back. */
export async function roundTrip<T>(value: T): Promise<{ echoed: T }> {
  return { echoed: await echo(value) };
}

export const proceed = defineSignal('proceed');

/** Step one, wait for `proceed`, step two. */
export async function twoSteps(): Promise<string> {
  let go = false;
  setHandler(proceed, () => void (go = true));
  await record('step one');
  await condition(() => go);
  await record('step two');
  return 'both steps done';
}
