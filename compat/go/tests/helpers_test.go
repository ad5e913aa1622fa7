package tests

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
)

// within returns a context that ends after d (and when the test ends), so that a server that
// never answers fails the test instead of hanging the suite.
func within(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var sequence atomic.Int64
var runTag = strconv.FormatInt(time.Now().UnixNano(), 36)
var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// uniqueID names something (a workflow ID, a task queue) after the test, unique across runs.
func uniqueID(t *testing.T, what string) string {
	return fmt.Sprintf("%s-%s-%s-%d", unsafeChars.ReplaceAllString(t.Name(), "_"), what, runTag, sequence.Add(1))
}

// startWorker runs a worker on a task queue of the test's own, with what register puts on it;
// it stops when the test ends. It returns the task queue.
func startWorker(t *testing.T, register func(worker.Registry)) string {
	t.Helper()
	taskQueue := uniqueID(t, "tq")
	w := worker.New(env.workers, taskQueue, worker.Options{})
	register(w)
	if err := w.Start(); err != nil {
		t.Fatalf("start worker on %s: %v", taskQueue, err)
	}
	t.Cleanup(w.Stop)
	return taskQueue
}

// start starts a workflow and fails the test if the server refuses.
func start(t *testing.T, ctx context.Context, opts client.StartWorkflowOptions, workflow any, args ...any) client.WorkflowRun {
	t.Helper()
	run, err := env.client.ExecuteWorkflow(ctx, opts, workflow, args...)
	if err != nil {
		t.Fatalf("start workflow %s: %v", opts.ID, err)
	}
	return run
}

// result waits for a workflow's result and fails the test if it failed or did not finish in time.
func result[T any](t *testing.T, ctx context.Context, run client.WorkflowRun) T {
	t.Helper()
	var out T
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("workflow %s (run %s): %v", run.GetID(), run.GetRunID(), err)
	}
	return out
}

// history reads a run's whole history (runID "" is the latest run).
func history(t *testing.T, ctx context.Context, workflowID, runID string) []*historypb.HistoryEvent {
	t.Helper()
	iter := env.client.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for iter.HasNext() {
		event, err := iter.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		events = append(events, event)
	}
	return events
}

// eventsOfType keeps the events of one type.
func eventsOfType(events []*historypb.HistoryEvent, eventType enumspb.EventType) []*historypb.HistoryEvent {
	var out []*historypb.HistoryEvent
	for _, e := range events {
		if e.GetEventType() == eventType {
			out = append(out, e)
		}
	}
	return out
}

// eventTypes lists the types of the events, for messages and order checks.
func eventTypes(events []*historypb.HistoryEvent) []enumspb.EventType {
	out := make([]enumspb.EventType, len(events))
	for i, e := range events {
		out[i] = e.GetEventType()
	}
	return out
}

// waitForEvent polls the history until an event of the type appears.
func waitForEvent(t *testing.T, ctx context.Context, workflowID string, eventType enumspb.EventType) *historypb.HistoryEvent {
	t.Helper()
	for {
		if found := eventsOfType(history(t, ctx, workflowID, ""), eventType); len(found) > 0 {
			return found[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("workflow %s: no %s event in history: %v", workflowID, eventType, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// eventually polls cond until it holds or the context ends.
func eventually(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// receive waits for a value on ch, failing the test if it does not come in time.
func receive[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// decode reads one payload with the default data converter.
func decode[T any](t *testing.T, p *commonpb.Payload) T {
	t.Helper()
	var out T
	if p == nil {
		t.Fatalf("no payload")
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, &out); err != nil {
		t.Fatalf("decode payload %q: %v", p.GetData(), err)
	}
	return out
}

// converterFromPayload decodes a payload inside workflow code (no *testing.T there).
func converterFromPayload(p *commonpb.Payload, out any) error {
	return converter.GetDefaultDataConverter().FromPayload(p, out)
}
