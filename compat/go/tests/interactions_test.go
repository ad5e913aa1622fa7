package tests

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// collector receives n "add" signals and returns them in the order they came.
func collector(ctx workflow.Context, n int) ([]int, error) {
	var got []int
	ch := workflow.GetSignalChannel(ctx, "add")
	for len(got) < n {
		var v int
		ch.Receive(ctx, &v)
		got = append(got, v)
	}
	return got, nil
}

func TestSignalsAreDeliveredInOrder(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(collector, workflow.RegisterOptions{Name: "Collector"})
	})
	id := uniqueID(t, "wf")

	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Collector", 3)
	for _, v := range []int{1, 2, 3} {
		if err := env.client.SignalWorkflow(ctx, id, "", "add", v); err != nil {
			t.Fatalf("signal %d: %v", v, err)
		}
	}
	if got := result[[]int](t, ctx, run); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("workflow received %v, want [1 2 3]", got)
	}
	signaled := eventsOfType(history(t, ctx, id, run.GetRunID()), enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
	if len(signaled) != 3 || signaled[0].GetWorkflowExecutionSignaledEventAttributes().GetSignalName() != "add" {
		t.Fatalf("want 3 WorkflowExecutionSignaled events named add, got %d", len(signaled))
	}

	// A completed workflow takes no more signals.
	err := env.client.SignalWorkflow(ctx, id, "", "add", 4)
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		t.Fatalf("signalling a completed workflow: %T %v, want *serviceerror.NotFound", err, err)
	}
}

// stages answers the "stage" query: waiting, advanced (after one "advance" signal), done
// (after the second, when it returns).
func stages(ctx workflow.Context) (string, error) {
	stage := "waiting"
	if err := workflow.SetQueryHandler(ctx, "stage", func() (string, error) { return stage, nil }); err != nil {
		return "", err
	}
	advance := workflow.GetSignalChannel(ctx, "advance")
	advance.Receive(ctx, nil)
	stage = "advanced"
	advance.Receive(ctx, nil)
	stage = "done"
	return stage, nil
}

func queryStage(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	value, err := env.client.QueryWorkflow(ctx, id, "", "stage")
	if err != nil {
		t.Fatalf("query stage: %T %v", err, err)
	}
	var stage string
	if err := value.Get(&stage); err != nil {
		t.Fatalf("query result: %v", err)
	}
	return stage
}

func TestQueryReadsWorkflowState(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(stages, workflow.RegisterOptions{Name: "Stages"})
	})
	id := uniqueID(t, "wf")
	query := func() string { t.Helper(); return queryStage(t, ctx, id) }

	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Stages")
	waitForEvent(t, ctx, id, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
	if got := query(); got != "waiting" {
		t.Fatalf("stage = %q, want waiting", got)
	}
	if err := env.client.SignalWorkflow(ctx, id, "", "advance", nil); err != nil {
		t.Fatalf("signal: %v", err)
	}
	eventually(t, ctx, "stage advanced", func() bool { return query() == "advanced" })

	// An unknown query type is an error, not a hang.
	if _, err := env.client.QueryWorkflow(ctx, id, "", "no-such-query"); err == nil || !strings.Contains(err.Error(), "no-such-query") {
		t.Fatalf("unknown query answered %v, want an error naming it", err)
	}

	if err := env.client.SignalWorkflow(ctx, id, "", "advance", nil); err != nil {
		t.Fatalf("signal: %v", err)
	}
	if got := result[string](t, ctx, run); got != "done" {
		t.Fatalf("result = %q", got)
	}
	// A closed workflow still answers queries (the worker replays it).
	if got := query(); got != "done" {
		t.Fatalf("stage of the completed workflow = %q, want done", got)
	}
}

func TestQueryBeforeTheFirstWorkflowTaskWaitsForIt(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)
	id := uniqueID(t, "wf")
	tq := uniqueID(t, "tq")

	// No worker yet: the workflow has not run at all when the query arrives.
	start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Stages")
	answer := make(chan string, 1)
	failure := make(chan error, 1)
	go func() {
		value, err := env.client.QueryWorkflow(ctx, id, "", "stage")
		var stage string
		if err == nil {
			err = value.Get(&stage)
		}
		if err != nil {
			failure <- err
			return
		}
		answer <- stage
	}()
	time.Sleep(300 * time.Millisecond)

	w := worker.New(env.workers, tq, worker.Options{})
	w.RegisterWorkflowWithOptions(stages, workflow.RegisterOptions{Name: "Stages"})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)

	select {
	case got := <-answer:
		if got != "waiting" {
			t.Fatalf("early query answered %q, want waiting", got)
		}
	case err := <-failure:
		t.Fatalf("query sent before the first workflow task: %T %v; want it answered once the worker runs the workflow", err, err)
	case <-ctx.Done():
		t.Fatalf("query sent before the first workflow task got no answer")
	}
}

// counter keeps a total that "add" updates change; the validator rejects non-positive numbers.
// "add-when-released" is accepted at once but completes only after the "release" signal.
// The workflow ends on the "finish" signal, once all handlers are done.
func counter(ctx workflow.Context) (int, error) {
	total := 0
	released := false
	positive := func(ctx workflow.Context, n int) error {
		if n <= 0 {
			return errors.New("must be positive")
		}
		return nil
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, "add", func(ctx workflow.Context, n int) (int, error) {
		total += n
		return total, nil
	}, workflow.UpdateHandlerOptions{Validator: positive})
	if err != nil {
		return 0, err
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, "add-when-released", func(ctx workflow.Context, n int) (int, error) {
		if err := workflow.Await(ctx, func() bool { return released }); err != nil {
			return 0, err
		}
		total += n
		return total, nil
	}, workflow.UpdateHandlerOptions{Validator: positive})
	if err != nil {
		return 0, err
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		workflow.GetSignalChannel(ctx, "release").Receive(ctx, nil)
		released = true
	})
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return 0, err
	}
	return total, nil
}

func TestUpdateValidatorRejectsAndHandlerCompletes(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(counter, workflow.RegisterOptions{Name: "Counter"})
	})
	id := uniqueID(t, "wf")
	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Counter")

	add := func(n int) (int, error) {
		handle, err := env.client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID:   id,
			UpdateName:   "add",
			Args:         []any{n},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err != nil {
			return 0, err
		}
		var total int
		err = handle.Get(ctx, &total)
		return total, err
	}
	if total, err := add(5); err != nil || total != 5 {
		t.Fatalf("add 5: total %d, error %v; want 5", total, err)
	}
	_, err := add(-1)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Message() != "must be positive" {
		t.Fatalf("add -1: error %v, want the validator's application error \"must be positive\"", err)
	}
	if total, err := add(2); err != nil || total != 7 {
		t.Fatalf("add 2 after the rejection: total %d, error %v; want 7", total, err)
	}

	if err := env.client.SignalWorkflow(ctx, id, "", "finish", nil); err != nil {
		t.Fatalf("signal finish: %v", err)
	}
	if got := result[int](t, ctx, run); got != 7 {
		t.Fatalf("result = %d, want 7", got)
	}
	// A rejected update leaves no trace in history.
	events := history(t, ctx, id, run.GetRunID())
	accepted := eventsOfType(events, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
	completed := eventsOfType(events, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)
	if len(accepted) != 2 || len(completed) != 2 {
		t.Fatalf("history %v: want 2 updates accepted and completed (the rejected one not recorded)", eventTypes(events))
	}
}

func TestUpdateWaitsForAcceptedThenGetsTheResult(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(counter, workflow.RegisterOptions{Name: "Counter"})
	})
	id := uniqueID(t, "wf")
	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Counter")

	handle, err := env.client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		UpdateID:     "slow-add-1",
		WorkflowID:   id,
		UpdateName:   "add-when-released",
		Args:         []any{3},
		WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	if err != nil {
		t.Fatalf("update (wait for accepted): %v", err)
	}
	if handle.UpdateID() != "slow-add-1" || handle.WorkflowID() != id || handle.RunID() != run.GetRunID() {
		t.Fatalf("handle names update %q of %s/%s, want slow-add-1 of %s/%s",
			handle.UpdateID(), handle.WorkflowID(), handle.RunID(), id, run.GetRunID())
	}

	// Accepted, not completed: the result is not there yet.
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	var early int
	err = handle.Get(short, &early)
	cancel()
	if err == nil {
		t.Fatalf("update completed (with %d) before the release", early)
	}

	if err := env.client.SignalWorkflow(ctx, id, "", "release", nil); err != nil {
		t.Fatalf("signal release: %v", err)
	}
	var total int
	if err := handle.Get(ctx, &total); err != nil || total != 3 {
		t.Fatalf("update result %d, error %v; want 3", total, err)
	}
	// The same update, found again by its ID.
	again := env.client.GetWorkflowUpdateHandle(client.GetWorkflowUpdateHandleOptions{WorkflowID: id, UpdateID: "slow-add-1"})
	total = 0
	if err := again.Get(ctx, &total); err != nil || total != 3 {
		t.Fatalf("update result by ID %d, error %v; want 3", total, err)
	}

	if err := env.client.SignalWorkflow(ctx, id, "", "finish", nil); err != nil {
		t.Fatalf("signal finish: %v", err)
	}
	if got := result[int](t, ctx, run); got != 3 {
		t.Fatalf("result = %d, want 3", got)
	}
}

func TestSignalWithStartStartsOnceThenSignals(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(collector, workflow.RegisterOptions{Name: "Collector"})
	})
	id := uniqueID(t, "wf")
	opts := client.StartWorkflowOptions{ID: id, TaskQueue: tq}

	first, err := env.client.SignalWithStartWorkflow(ctx, id, "add", 1, opts, "Collector", 3)
	if err != nil {
		t.Fatalf("signal-with-start (starts): %v", err)
	}
	second, err := env.client.SignalWithStartWorkflow(ctx, id, "add", 2, opts, "Collector", 3)
	if err != nil {
		t.Fatalf("signal-with-start (signals): %v", err)
	}
	if first.GetRunID() == "" || second.GetRunID() != first.GetRunID() {
		t.Fatalf("second signal-with-start went to run %q, want the running %q", second.GetRunID(), first.GetRunID())
	}
	if err := env.client.SignalWorkflow(ctx, id, "", "add", 3); err != nil {
		t.Fatalf("signal: %v", err)
	}
	if got := result[[]int](t, ctx, first); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("workflow received %v, want [1 2 3]", got)
	}
	events := history(t, ctx, id, first.GetRunID())
	if events[0].GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED ||
		events[1].GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
		t.Fatalf("history %v: want WorkflowExecutionStarted then the signal", eventTypes(events))
	}
}
