/**
 * What activities did, per workflow id, in this process: tests read it to check which
 * activities ran, how often and in which order.
 */
export interface Entry {
  entry: string;
  at: number;
}

const byWorkflow = new Map<string, Entry[]>();

export function record(workflowId: string, entry: string): void {
  let entries = byWorkflow.get(workflowId);
  if (!entries) byWorkflow.set(workflowId, (entries = []));
  entries.push({ entry, at: Date.now() });
}

export function entries(workflowId: string): string[] {
  return (byWorkflow.get(workflowId) ?? []).map((e) => e.entry);
}

export function timeline(workflowId: string): Entry[] {
  return [...(byWorkflow.get(workflowId) ?? [])];
}
