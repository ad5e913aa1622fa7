import {
  ApplicationFailure,
  ChildWorkflowFailure,
  condition,
  executeChild,
  ParentClosePolicy,
  startChild,
} from '@temporalio/workflow';

export async function greeter(name: string): Promise<string> {
  return `hello ${name}`;
}

export async function failingChild(): Promise<never> {
  throw ApplicationFailure.nonRetryable('the child gave up', 'ChildGaveUp');
}

/** Waits until cancelled or terminated. */
export async function blockingChild(): Promise<never> {
  await condition(() => false);
  throw new Error('unreachable');
}

export async function parentOfGreeter(childId: string): Promise<string> {
  return executeChild(greeter, { workflowId: childId, args: ['ada'] });
}

export async function parentOfFailingChild(childId: string): Promise<{ failure: string; cause?: string; message?: string; type?: string | null }> {
  try {
    await executeChild(failingChild, { workflowId: childId });
    return { failure: 'none' };
  } catch (err) {
    if (!(err instanceof ChildWorkflowFailure)) throw err;
    const cause = err.cause;
    return {
      failure: err.name,
      cause: cause?.name,
      message: cause?.message,
      type: cause instanceof ApplicationFailure ? cause.type : undefined,
    };
  }
}

/** Starts one blocking child per parent close policy and completes once all have started. */
export async function parentWithClosePolicies(ids: { abandon: string; terminate: string; requestCancel: string }): Promise<string> {
  await startChild(blockingChild, { workflowId: ids.abandon, parentClosePolicy: ParentClosePolicy.ABANDON });
  await startChild(blockingChild, { workflowId: ids.terminate, parentClosePolicy: ParentClosePolicy.TERMINATE });
  await startChild(blockingChild, { workflowId: ids.requestCancel, parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL });
  return 'children started';
}
