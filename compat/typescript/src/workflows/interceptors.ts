/**
 * Workflow interceptors, bundled into the run's one workflow bundle, so present on every
 * worker. They act only on workflows started with the `compat-token` header (see
 * ../interceptors.ts): the token seen at start is copied onto every activity the workflow
 * schedules and added to the workflow's result; a `tagged` signal carrying the header gets
 * the token appended to its argument.
 */
import { defaultPayloadConverter, Payload, WorkflowInterceptorsFactory } from '@temporalio/workflow';

const TOKEN_HEADER = 'compat-token';

export const interceptors: WorkflowInterceptorsFactory = () => {
  let token: Payload | undefined;
  return {
    inbound: [
      {
        async execute(input, next) {
          token = input.headers[TOKEN_HEADER];
          const result = await next(input);
          if (!token) return result;
          return { ...(result as object), startHeader: defaultPayloadConverter.fromPayload(token) };
        },
        async handleSignal(input, next) {
          const header = input.headers[TOKEN_HEADER];
          if (!header || input.signalName !== 'tagged') return next(input);
          const via = defaultPayloadConverter.fromPayload<string>(header);
          return next({ ...input, args: [`${input.args[0]} via ${via}`] });
        },
      },
    ],
    outbound: [
      {
        async scheduleActivity(input, next) {
          if (!token) return next(input);
          return next({ ...input, headers: { ...input.headers, [TOKEN_HEADER]: token } });
        },
      },
    ],
  };
};
