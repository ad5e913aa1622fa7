import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientWith, env, newWorker, uid } from '../harness';
import { CODEC_ENCODING, XorCodec } from '../codec';
import { TOKEN_HEADER, tokenClientInterceptor } from '../interceptors';
import { intercepted, roundTrip, tagged } from '../workflows';
import { historyEvents } from './util';

describe('interceptors', () => {
  it('headers set by a client interceptor reach workflow and activity interceptors through the server', async () => {
    const { taskQueue } = env();
    const client = clientWith({ interceptors: { workflow: [tokenClientInterceptor('token-42')] } });
    const handle = await client.workflow.start(intercepted, { taskQueue, workflowId: uid('intercepted') });
    await handle.signal(tagged, 'hello');
    assert.deepEqual(await handle.result(), {
      tags: ['hello via token-42'],
      fromActivity: 'ping (activity saw token-42)',
      startHeader: 'token-42',
    });
    const events = await historyEvents(handle);
    const started = events.find((e) => e.workflowExecutionStartedEventAttributes);
    assert.ok(started?.workflowExecutionStartedEventAttributes?.header?.fields?.[TOKEN_HEADER], 'start header in history');
    const signaled = events.find((e) => e.workflowExecutionSignaledEventAttributes);
    assert.ok(signaled?.workflowExecutionSignaledEventAttributes?.header?.fields?.[TOKEN_HEADER], 'signal header in history');
    const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes);
    assert.ok(scheduled?.activityTaskScheduledEventAttributes?.header?.fields?.[TOKEN_HEADER], 'activity header in history');
  });
});

describe('payload codec', () => {
  it('a codec on client and worker round-trips values; the server only stores encoded payloads', async () => {
    const dataConverter = { payloadCodecs: [new XorCodec()] };
    const taskQueue = uid('codec');
    const worker = await newWorker({ taskQueue, dataConverter });
    const client = clientWith({ dataConverter });
    const secret = { message: 'the secret is 42', list: [1, 2, 3] };
    const handle = await client.workflow.start(roundTrip, { taskQueue, workflowId: uid('codec'), args: [secret] });
    const result = await worker.runUntil(handle.result());
    assert.deepEqual(result, { echoed: secret });

    const events = await historyEvents(env().client.workflow.getHandle(handle.workflowId));
    const payloads = [
      events[0].workflowExecutionStartedEventAttributes?.input?.payloads?.[0],
      events.find((e) => e.activityTaskScheduledEventAttributes)?.activityTaskScheduledEventAttributes?.input?.payloads?.[0],
      events.find((e) => e.activityTaskCompletedEventAttributes)?.activityTaskCompletedEventAttributes?.result?.payloads?.[0],
      events.at(-1)?.workflowExecutionCompletedEventAttributes?.result?.payloads?.[0],
    ];
    for (const [i, p] of payloads.entries()) {
      assert.ok(p, `payload ${i} present`);
      assert.equal(new TextDecoder().decode(p.metadata!.encoding!), CODEC_ENCODING, `payload ${i} encoding`);
      assert.ok(!Buffer.from(p.data!).toString('latin1').includes('secret'), `payload ${i} is not plaintext`);
    }
  });
});
