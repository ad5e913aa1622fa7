/**
 * Client and activity interceptors that carry a token in the `compat-token` header: the client
 * puts it on start and signal requests; the workflow interceptors (workflows/interceptors.ts)
 * read it and put it on the activities they schedule; the activity interceptor appends what it
 * saw to the activity's result. Every hop goes through the server.
 */
import { WorkflowClientInterceptor } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { ActivityInterceptorsFactory } from '@temporalio/worker';

export const TOKEN_HEADER = 'compat-token';

/** A client interceptor that adds `token` to every start and signal. */
export function tokenClientInterceptor(token: string): WorkflowClientInterceptor {
  const headers = { [TOKEN_HEADER]: defaultPayloadConverter.toPayload(token) };
  return {
    async startWithDetails(input, next) {
      return next({ ...input, headers: { ...input.headers, ...headers } });
    },
    async signal(input, next) {
      return next({ ...input, headers: { ...input.headers, ...headers } });
    },
  };
}

/** On every worker; acts only on activities that carry the header. */
export const activityInterceptors: ActivityInterceptorsFactory[] = [
  () => ({
    inbound: {
      async execute(input, next) {
        const header = input.headers[TOKEN_HEADER];
        const result = await next(input);
        if (!header) return result;
        return `${result} (activity saw ${defaultPayloadConverter.fromPayload(header)})`;
      },
    },
  }),
];
