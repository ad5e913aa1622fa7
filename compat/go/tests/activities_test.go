package tests

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func TestActivityRetriesUntilItSucceeds(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)

	flaky := func(ctx context.Context) (int32, error) {
		attempt := activity.GetInfo(ctx).Attempt
		if attempt < 3 {
			return 0, fmt.Errorf("not yet (attempt %d)", attempt)
		}
		return attempt, nil
	}
	retrying := func(ctx workflow.Context) (int32, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 10 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval:    100 * time.Millisecond,
				BackoffCoefficient: 1,
				MaximumAttempts:    5,
			},
		})
		var attempt int32
		err := workflow.ExecuteActivity(ctx, "Flaky").Get(ctx, &attempt)
		return attempt, err
	}
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterActivityWithOptions(flaky, activity.RegisterOptions{Name: "Flaky"})
		r.RegisterWorkflowWithOptions(retrying, workflow.RegisterOptions{Name: "Retrying"})
	})
	id := uniqueID(t, "wf")

	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Retrying")
	if got := result[int32](t, ctx, run); got != 3 {
		t.Fatalf("succeeded on attempt %d, want 3", got)
	}

	// Retries are not history events: one schedule, one start (of the last attempt, carrying
	// the previous attempt's failure), one completion.
	events := history(t, ctx, id, run.GetRunID())
	scheduled := eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
	started := eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED)
	completed := eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
	failed := eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED)
	if len(scheduled) != 1 || len(started) != 1 || len(completed) != 1 || len(failed) != 0 {
		t.Fatalf("history %v: want one activity scheduled, started and completed, none failed", eventTypes(events))
	}
	attrs := started[0].GetActivityTaskStartedEventAttributes()
	if attrs.GetAttempt() != 3 {
		t.Errorf("ActivityTaskStarted attempt = %d, want 3", attrs.GetAttempt())
	}
	if got := attrs.GetLastFailure().GetMessage(); got != "not yet (attempt 2)" {
		t.Errorf("ActivityTaskStarted last failure = %q, want %q", got, "not yet (attempt 2)")
	}
}

func TestHeartbeatDetailsSurviveARetry(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)

	// Processes items 1..5. The first attempt processes 1..3, checkpoints 3 in a heartbeat and
	// crashes; the second resumes after the checkpoint.
	resumedFrom := make(chan int, 10)
	processItems := func(ctx context.Context) ([]int, error) {
		next := 1
		if activity.HasHeartbeatDetails(ctx) {
			var checkpoint int
			if err := activity.GetHeartbeatDetails(ctx, &checkpoint); err != nil {
				return nil, err
			}
			next = checkpoint + 1
		}
		resumedFrom <- next
		var processed []int
		for item := next; item <= 5; item++ {
			processed = append(processed, item)
			if activity.GetInfo(ctx).Attempt == 1 && item == 3 {
				activity.RecordHeartbeat(ctx, item)
				return nil, errors.New("crashed after item 3")
			}
		}
		return processed, nil
	}
	batch := func(ctx workflow.Context) ([]int, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 10 * time.Second,
			HeartbeatTimeout:    5 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumAttempts: 3},
		})
		var processed []int
		err := workflow.ExecuteActivity(ctx, "ProcessItems").Get(ctx, &processed)
		return processed, err
	}
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterActivityWithOptions(processItems, activity.RegisterOptions{Name: "ProcessItems"})
		r.RegisterWorkflowWithOptions(batch, workflow.RegisterOptions{Name: "Batch"})
	})

	run := start(t, ctx, client.StartWorkflowOptions{ID: uniqueID(t, "wf"), TaskQueue: tq}, "Batch")
	processed := result[[]int](t, ctx, run)
	if first, second := receive(t, ctx, resumedFrom, "attempt 1"), receive(t, ctx, resumedFrom, "attempt 2"); first != 1 || second != 4 {
		t.Fatalf("attempts started at items %d and %d, want 1 and 4 (after the heartbeat checkpoint 3)", first, second)
	}
	if !slices.Equal(processed, []int{4, 5}) {
		t.Fatalf("second attempt processed %v, want [4 5]", processed)
	}
}

func TestWorkflowCancelsAHeartbeatingActivity(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)

	activityStarted := make(chan struct{}, 10)
	activitySaw := make(chan error, 10)
	heartbeater := func(ctx context.Context) error {
		activityStarted <- struct{}{}
		for i := 0; ; i++ {
			activity.RecordHeartbeat(ctx, i)
			select {
			case <-ctx.Done():
				activitySaw <- ctx.Err()
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	cancelling := func(ctx workflow.Context) (string, error) {
		activityCtx, cancelActivity := workflow.WithCancel(ctx)
		activityCtx = workflow.WithActivityOptions(activityCtx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			HeartbeatTimeout:    2 * time.Second,
			WaitForCancellation: true,
		})
		future := workflow.ExecuteActivity(activityCtx, "Heartbeater")
		workflow.GetSignalChannel(ctx, "cancel-activity").Receive(ctx, nil)
		cancelActivity()
		err := future.Get(ctx, nil)
		var canceled *temporal.CanceledError
		if errors.As(err, &canceled) {
			return "activity cancelled", nil
		}
		return "", fmt.Errorf("activity ended with %v, want a CanceledError", err)
	}
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterActivityWithOptions(heartbeater, activity.RegisterOptions{Name: "Heartbeater"})
		r.RegisterWorkflowWithOptions(cancelling, workflow.RegisterOptions{Name: "Cancelling"})
	})
	id := uniqueID(t, "wf")

	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Cancelling")
	receive(t, ctx, activityStarted, "the activity to start")
	if err := env.client.SignalWorkflow(ctx, id, "", "cancel-activity", nil); err != nil {
		t.Fatalf("signal: %v", err)
	}
	if err := receive(t, ctx, activitySaw, "the activity to see its context done"); !errors.Is(err, context.Canceled) {
		t.Fatalf("activity context ended with %v, want context.Canceled", err)
	}
	if got := result[string](t, ctx, run); got != "activity cancelled" {
		t.Fatalf("result = %q", got)
	}
	events := history(t, ctx, id, run.GetRunID())
	if len(eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED)) != 1 ||
		len(eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED)) != 1 {
		t.Fatalf("history %v: want ActivityTaskCancelRequested and ActivityTaskCanceled", eventTypes(events))
	}
}
