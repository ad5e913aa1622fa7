package tests

import (
	"errors"
	"fmt"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func TestWorkflowSleepWaitsForTheTimer(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)

	sleeper := func(ctx workflow.Context) (time.Duration, error) {
		before := workflow.Now(ctx)
		if err := workflow.Sleep(ctx, time.Second); err != nil {
			return 0, err
		}
		return workflow.Now(ctx).Sub(before), nil
	}
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(sleeper, workflow.RegisterOptions{Name: "Sleeper"})
	})
	id := uniqueID(t, "wf")

	began := time.Now()
	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Sleeper")
	slept := result[time.Duration](t, ctx, run)
	if elapsed := time.Since(began); elapsed < time.Second {
		t.Fatalf("workflow finished %v after start, before its 1s timer", elapsed)
	}
	if slept < time.Second {
		t.Fatalf("workflow time advanced %v across Sleep(1s)", slept)
	}

	events := history(t, ctx, id, run.GetRunID())
	started := eventsOfType(events, enumspb.EVENT_TYPE_TIMER_STARTED)
	fired := eventsOfType(events, enumspb.EVENT_TYPE_TIMER_FIRED)
	if len(started) != 1 || len(fired) != 1 {
		t.Fatalf("history %v: want one TimerStarted and one TimerFired", eventTypes(events))
	}
	if got := started[0].GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration(); got != time.Second {
		t.Errorf("TimerStarted start_to_fire_timeout = %v, want 1s", got)
	}
	if fired[0].GetTimerFiredEventAttributes().GetTimerId() != started[0].GetTimerStartedEventAttributes().GetTimerId() {
		t.Errorf("TimerFired is for another timer than TimerStarted")
	}
}

func TestCancelledTimerNeverFires(t *testing.T) {
	t.Parallel()
	ctx := within(t, 30*time.Second)

	// Waits for an hour-long timer or the "stop-waiting" signal; on the signal, cancels the timer.
	waiter := func(ctx workflow.Context) (string, error) {
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(timerCtx, time.Hour)
		outcome := ""
		selector := workflow.NewSelector(ctx)
		selector.AddFuture(timer, func(f workflow.Future) { outcome = "timer fired" })
		selector.AddReceive(workflow.GetSignalChannel(ctx, "stop-waiting"), func(c workflow.ReceiveChannel, more bool) {
			c.Receive(ctx, nil)
			cancelTimer()
			err := timer.Get(ctx, nil)
			var canceled *temporal.CanceledError
			if errors.As(err, &canceled) {
				outcome = "timer cancelled"
			} else {
				outcome = fmt.Sprintf("cancelled timer returned %v", err)
			}
		})
		selector.Select(ctx)
		return outcome, nil
	}
	tq := startWorker(t, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(waiter, workflow.RegisterOptions{Name: "Waiter"})
	})
	id := uniqueID(t, "wf")

	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, "Waiter")
	waitForEvent(t, ctx, id, enumspb.EVENT_TYPE_TIMER_STARTED)
	if err := env.client.SignalWorkflow(ctx, id, "", "stop-waiting", nil); err != nil {
		t.Fatalf("signal: %v", err)
	}
	if got := result[string](t, ctx, run); got != "timer cancelled" {
		t.Fatalf("result = %q, want %q", got, "timer cancelled")
	}
	events := history(t, ctx, id, run.GetRunID())
	if len(eventsOfType(events, enumspb.EVENT_TYPE_TIMER_CANCELED)) != 1 || len(eventsOfType(events, enumspb.EVENT_TYPE_TIMER_FIRED)) != 0 {
		t.Fatalf("history %v: want TimerCanceled and no TimerFired", eventTypes(events))
	}
}
