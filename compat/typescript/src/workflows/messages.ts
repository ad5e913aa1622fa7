import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  setHandler,
} from '@temporalio/workflow';

export const add = defineSignal<[string]>('add');
export const done = defineSignal('done');
export const items = defineQuery<string[]>('items');

/** Collects `add` signals in order until `done`; `items` queries them. */
export async function collector(first?: string): Promise<string[]> {
  const collected: string[] = first ? [first] : [];
  let finished = false;
  setHandler(add, (item) => void collected.push(item));
  setHandler(done, () => void (finished = true));
  setHandler(items, () => collected);
  await condition(() => finished);
  return collected;
}

export const increment = defineUpdate<number, [number]>('increment');
export const refuse = defineUpdate<void, []>('refuse');
export const incrementWhenReleased = defineUpdate<number, [number]>('incrementWhenReleased');
export const release = defineSignal('release');
export const finish = defineSignal('finish');
export const count = defineQuery<number>('count');

/**
 * A counter changed by updates: `increment` (validator: positive amounts only), `refuse` (its
 * handler always fails), `incrementWhenReleased` (waits for the `release` signal). Returns the
 * count after `finish`.
 */
export async function counter(): Promise<number> {
  let value = 0;
  let released = false;
  let finished = false;
  setHandler(
    increment,
    (by) => (value += by),
    {
      validator: (by) => {
        if (by <= 0) throw new Error(`increment must be positive, got ${by}`);
      },
    },
  );
  setHandler(refuse, () => {
    throw ApplicationFailure.create({ message: 'this update always fails', type: 'Refused' });
  });
  setHandler(incrementWhenReleased, async (by) => {
    await condition(() => released);
    return (value += by);
  });
  setHandler(release, () => void (released = true));
  setHandler(finish, () => void (finished = true));
  setHandler(count, () => value);
  await condition(() => finished);
  await condition(allHandlersFinished);
  return value;
}
