package tests

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func TestChildWorkflowReturnsToItsParent(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)

	shout := func(ctx workflow.Context, s string) (string, error) {
		return strings.ToUpper(s) + "!", nil
	}
	parent := func(ctx workflow.Context, childID string) (string, error) {
		ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: childID})
		child := workflow.ExecuteChildWorkflow(ctx, "Shout", "hello")
		var execution workflow.Execution
		if err := child.GetChildWorkflowExecution().Get(ctx, &execution); err != nil {
			return "", err
		}
		var out string
		if err := child.Get(ctx, &out); err != nil {
			return "", err
		}
		return out + " from " + execution.ID, nil
	}
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(shout, workflow.RegisterOptions{Name: "Shout"})
		r.RegisterWorkflowWithOptions(parent, workflow.RegisterOptions{Name: "Parent"})
	})
	id := uniqueID(t, "parent")
	childID := id + "-child"

	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Parent", childID)
	if got, want := result[string](t, ctx, run), "HELLO! from "+childID; got != want {
		t.Fatalf("result = %q, want %q", got, want)
	}

	child, err := env.client.DescribeWorkflowExecution(ctx, childID, "")
	if err != nil {
		t.Fatalf("describe child: %v", err)
	}
	info := child.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED || info.GetType().GetName() != "Shout" {
		t.Errorf("child is %v %s, want a COMPLETED Shout", info.GetStatus(), info.GetType().GetName())
	}
	if p := info.GetParentExecution(); p.GetWorkflowId() != id || p.GetRunId() != run.GetRunID() {
		t.Errorf("child's parent = %v, want %s/%s", p, id, run.GetRunID())
	}
	if got := info.GetTaskQueue(); got != tq {
		t.Errorf("child's task queue = %q, want the parent's %q", got, tq)
	}
	events := history(t, ctx, id, run.GetRunID())
	for _, want := range []enumspb.EventType{
		enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
		enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
		enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
	} {
		if len(eventsOfType(events, want)) != 1 {
			t.Errorf("parent history %v: want one %v", eventTypes(events), want)
		}
	}
}

func TestContinueAsNewCarriesStateToTheNextRun(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)

	// Counts to limit, one run per step.
	countTo := func(ctx workflow.Context, n, limit int) (int, error) {
		if n < limit {
			return 0, workflow.NewContinueAsNewError(ctx, "CountTo", n+1, limit)
		}
		return n, nil
	}
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(countTo, workflow.RegisterOptions{Name: "CountTo"})
	})
	id := uniqueID(t, "wf")

	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "CountTo", 0, 3)
	firstRunID := run.GetRunID()
	// The first run's handle follows the chain to the last run's result.
	if got := result[int](t, ctx, run); got != 3 {
		t.Fatalf("result = %d, want 3", got)
	}
	if run.GetRunID() == firstRunID {
		t.Errorf("after following the chain the handle still names the first run %s", firstRunID)
	}

	first, err := env.client.DescribeWorkflowExecution(ctx, id, firstRunID)
	if err != nil {
		t.Fatalf("describe first run: %v", err)
	}
	if got := first.GetWorkflowExecutionInfo().GetStatus(); got != enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
		t.Fatalf("first run status %v, want CONTINUED_AS_NEW", got)
	}
	latest, err := env.client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("describe latest run: %v", err)
	}
	if latest.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED ||
		latest.GetWorkflowExecutionInfo().GetExecution().GetRunId() == firstRunID {
		t.Fatalf("latest run %v (%s), want another run, COMPLETED", latest.GetWorkflowExecutionInfo().GetExecution(), latest.GetWorkflowExecutionInfo().GetStatus())
	}

	// The first run ends with ContinuedAsNew naming the next run; that run says where it came from.
	events := history(t, ctx, id, firstRunID)
	last := events[len(events)-1].GetWorkflowExecutionContinuedAsNewEventAttributes()
	if last == nil || last.GetNewExecutionRunId() == "" {
		t.Fatalf("first run's history ends with %v, want WorkflowExecutionContinuedAsNew", events[len(events)-1].GetEventType())
	}
	next := history(t, ctx, id, last.GetNewExecutionRunId())
	started := next[0].GetWorkflowExecutionStartedEventAttributes()
	if got := started.GetContinuedExecutionRunId(); got != firstRunID {
		t.Errorf("second run's continued_execution_run_id = %q, want the first run %q", got, firstRunID)
	}
	if got := started.GetInitiator(); got != enumspb.CONTINUE_AS_NEW_INITIATOR_WORKFLOW {
		t.Errorf("second run's initiator = %v, want Workflow", got)
	}
	if got := decode[int](t, started.GetInput().GetPayloads()[0]); got != 1 {
		t.Errorf("second run's input n = %d, want 1", got)
	}
}

func TestStartDelayPostponesTheFirstWorkflowTask(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)

	whenAmI := func(ctx workflow.Context) (time.Time, error) { return workflow.Now(ctx), nil }
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(whenAmI, workflow.RegisterOptions{Name: "WhenAmI"})
	})
	id := uniqueID(t, "wf")

	began := time.Now()
	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq, StartDelay: 2 * time.Second}, "WhenAmI")

	desc, err := env.client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if delay := info.GetExecutionTime().AsTime().Sub(info.GetStartTime().AsTime()); delay < 2*time.Second-time.Millisecond || delay > 3*time.Second {
		t.Errorf("execution_time - start_time = %v, want 2s", delay)
	}

	ranAt := result[time.Time](t, ctx, run)
	if elapsed := time.Since(began); elapsed < 2*time.Second {
		t.Fatalf("the delayed workflow finished %v after start, before its 2s delay", elapsed)
	}
	if ranAt.Sub(info.GetStartTime().AsTime()) < 2*time.Second-time.Millisecond {
		t.Fatalf("the first workflow task ran at %v, less than 2s after the start %v", ranAt, info.GetStartTime().AsTime())
	}
	started := history(t, ctx, id, run.GetRunID())[0].GetWorkflowExecutionStartedEventAttributes()
	if got := started.GetFirstWorkflowTaskBackoff().AsDuration(); got != 2*time.Second {
		t.Errorf("first_workflow_task_backoff = %v, want 2s", got)
	}
}

func TestCronScheduleRunsAgainWithTheLastResult(t *testing.T) {
	t.Parallel()
	ctx := within(t, 40*time.Second)

	type cronRun struct {
		N     int
		RunID string
	}
	runs := make(chan cronRun, 10)
	record := func(ctx context.Context, n int) error {
		runs <- cronRun{N: n, RunID: activity.GetInfo(ctx).WorkflowExecution.RunID}
		return nil
	}
	// Each run counts one more than the last completed run.
	tick := func(ctx workflow.Context) (int, error) {
		n := 0
		if workflow.HasLastCompletionResult(ctx) {
			if err := workflow.GetLastCompletionResult(ctx, &n); err != nil {
				return 0, err
			}
		}
		n++
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
		return n, workflow.ExecuteActivity(ctx, "Record", n).Get(ctx, nil)
	}
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterActivityWithOptions(record, activity.RegisterOptions{Name: "Record"})
		r.RegisterWorkflowWithOptions(tick, workflow.RegisterOptions{Name: "Tick"})
	})
	id := uniqueID(t, "cron")

	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq, CronSchedule: "@every 2s"}, "Tick")
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = env.client.TerminateWorkflow(stopCtx, id, "", "test over")
	}()

	first := receive(t, ctx, runs, "the first cron run")
	second := receive(t, ctx, runs, "the second cron run")
	if first.N != 1 || second.N != 2 {
		t.Fatalf("cron runs counted %d then %d, want 1 then 2", first.N, second.N)
	}
	if first.RunID != run.GetRunID() || second.RunID == first.RunID {
		t.Fatalf("cron runs %s then %s, want %s then a new run", first.RunID, second.RunID, run.GetRunID())
	}
	desc, err := env.client.DescribeWorkflowExecution(ctx, id, first.RunID)
	if err != nil {
		t.Fatalf("describe first run: %v", err)
	}
	if got := desc.GetWorkflowExecutionInfo().GetStatus(); got != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("first cron run status %v, want COMPLETED", got)
	}
	started := history(t, ctx, id, second.RunID)[0].GetWorkflowExecutionStartedEventAttributes()
	if started.GetCronSchedule() != "@every 2s" || started.GetInitiator() != enumspb.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE {
		t.Errorf("second run started with cron %q initiator %v, want @every 2s CRON_SCHEDULE", started.GetCronSchedule(), started.GetInitiator())
	}
}

func TestCancelledWorkflowCleansUpAndEndsCanceled(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)

	cleanedUp := make(chan struct{}, 10)
	cleanup := func(ctx context.Context) error {
		cleanedUp <- struct{}{}
		return nil
	}
	// Sleeps for an hour; when cancelled, runs a cleanup activity on a disconnected context.
	napper := func(ctx workflow.Context) (string, error) {
		err := workflow.Sleep(ctx, time.Hour)
		if temporal.IsCanceledError(err) {
			cleanupCtx, _ := workflow.NewDisconnectedContext(ctx)
			cleanupCtx = workflow.WithActivityOptions(cleanupCtx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
			if err := workflow.ExecuteActivity(cleanupCtx, "Cleanup").Get(cleanupCtx, nil); err != nil {
				return "", err
			}
		}
		return "slept", err
	}
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterActivityWithOptions(cleanup, activity.RegisterOptions{Name: "Cleanup"})
		r.RegisterWorkflowWithOptions(napper, workflow.RegisterOptions{Name: "Napper"})
	})
	id := uniqueID(t, "wf")

	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Napper")
	waitForEvent(t, ctx, id, enumspb.EVENT_TYPE_TIMER_STARTED)
	if err := env.client.CancelWorkflow(ctx, id, ""); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	receive(t, ctx, cleanedUp, "the cleanup activity")

	err := run.Get(ctx, nil)
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) {
		t.Fatalf("cancelled workflow's result: %v, want a CanceledError", err)
	}
	desc, err := env.client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if got := desc.GetWorkflowExecutionInfo().GetStatus(); got != enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED {
		t.Fatalf("status %v, want CANCELED", got)
	}
	events := history(t, ctx, id, run.GetRunID())
	if len(eventsOfType(events, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)) != 1 ||
		events[len(events)-1].GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED {
		t.Fatalf("history %v: want WorkflowExecutionCancelRequested, ending with WorkflowExecutionCanceled", eventTypes(events))
	}
}

func TestTerminatedWorkflowEndsWithTheReason(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)

	forever := func(ctx workflow.Context) error { return workflow.Sleep(ctx, time.Hour) }
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(forever, workflow.RegisterOptions{Name: "Forever"})
	})
	id := uniqueID(t, "wf")

	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Forever")
	waitForEvent(t, ctx, id, enumspb.EVENT_TYPE_TIMER_STARTED)
	if err := env.client.TerminateWorkflow(ctx, id, "", "enough", "some detail"); err != nil {
		t.Fatalf("terminate: %v", err)
	}

	err := run.Get(ctx, nil)
	var terminated *temporal.TerminatedError
	if !errors.As(err, &terminated) {
		t.Fatalf("terminated workflow's result: %v, want a TerminatedError", err)
	}
	desc, err := env.client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if got := desc.GetWorkflowExecutionInfo().GetStatus(); got != enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED {
		t.Fatalf("status %v, want TERMINATED", got)
	}
	events := history(t, ctx, id, run.GetRunID())
	attrs := events[len(events)-1].GetWorkflowExecutionTerminatedEventAttributes()
	if attrs == nil || attrs.GetReason() != "enough" {
		t.Fatalf("history ends with %v, want WorkflowExecutionTerminated with reason \"enough\"", events[len(events)-1])
	}
	if got := decode[string](t, attrs.GetDetails().GetPayloads()[0]); got != "some detail" {
		t.Errorf("termination details = %q, want \"some detail\"", got)
	}
	// Terminating it again: the workflow is not running.
	var notFound *serviceerror.NotFound
	if err := env.client.TerminateWorkflow(ctx, id, "", "again"); !errors.As(err, &notFound) {
		t.Errorf("terminating a terminated workflow: %T %v, want *serviceerror.NotFound", err, err)
	}
}
