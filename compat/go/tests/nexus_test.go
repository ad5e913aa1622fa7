package tests

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nexus-rpc/sdk-go/nexus"
	enumspb "go.temporal.io/api/enums/v1"
	nexuspb "go.temporal.io/api/nexus/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/temporalnexus"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

const greetingService = "greeting"

// The operations a handler worker offers: one answered at once, one run by a workflow.
var sayHello = nexus.NewSyncOperation("say-hello", func(ctx context.Context, name string, _ nexus.StartOperationOptions) (string, error) {
	switch name {
	case "bad request":
		return "", nexus.HandlerErrorf(nexus.HandlerErrorTypeBadRequest, "a bad request: %s", name)
	case "refused":
		return "", nexus.NewOperationFailedError("the operation refused " + name)
	case "slow":
		<-ctx.Done() // the caller's deadline ends it
		return "", ctx.Err()
	}
	return "Hello, " + name + "!", nil
})

func greetLater(ctx workflow.Context, name string) (string, error) {
	if name == "wait for cancel" {
		return "", workflow.Await(ctx, func() bool { return false })
	}
	if err := workflow.Sleep(ctx, 100*time.Millisecond); err != nil {
		return "", err
	}
	return "Hello later, " + name + "!", nil
}

var greetByWorkflow = temporalnexus.NewWorkflowRunOperation("greet-by-workflow", greetLater,
	func(ctx context.Context, name string, opts nexus.StartOperationOptions) (client.StartWorkflowOptions, error) {
		return client.StartWorkflowOptions{ID: "greet-" + opts.RequestID}, nil
	})

// callOperation is the caller: it runs one operation of the greeting service and returns its
// result (or its failure).
func callOperation(ctx workflow.Context, endpoint, operation, name string, timeout time.Duration) (string, error) {
	c := workflow.NewNexusClient(endpoint, greetingService)
	var result string
	err := c.ExecuteOperation(ctx, operation, name, workflow.NexusOperationOptions{ScheduleToCloseTimeout: timeout}).Get(ctx, &result)
	return result, err
}

// cancelOperation starts the workflow-run operation, waits until it started, then cancels it.
func cancelOperation(ctx workflow.Context, endpoint string) (string, error) {
	c := workflow.NewNexusClient(endpoint, greetingService)
	opCtx, cancel := workflow.WithCancel(ctx)
	fut := c.ExecuteOperation(opCtx, greetByWorkflow, "wait for cancel", workflow.NexusOperationOptions{ScheduleToCloseTimeout: time.Minute})
	var exec workflow.NexusOperationExecution
	if err := fut.GetNexusOperationExecution().Get(ctx, &exec); err != nil {
		return "", err
	}
	cancel()
	err := fut.Get(ctx, nil)
	return exec.OperationToken, err
}

// nexusSetup runs one worker that is both the handler (the greeting service) and the caller,
// behind an endpoint of the test's own, and returns the task queue and the endpoint's name.
func nexusSetup(t *testing.T, ctx context.Context) (string, string) {
	t.Helper()
	service := nexus.NewService(greetingService)
	if err := service.Register(sayHello, greetByWorkflow); err != nil {
		t.Fatal(err)
	}
	taskQueue := startWorker(t, func(r worker.Registry) {
		r.RegisterNexusService(service)
		r.RegisterWorkflow(greetLater)
		r.RegisterWorkflow(callOperation)
		r.RegisterWorkflow(cancelOperation)
	})
	endpoint := "ep-" + strings.ReplaceAll(uniqueID(t, "endpoint"), "_", "-")
	_, err := env.client.OperatorService().CreateNexusEndpoint(ctx, &operatorservice.CreateNexusEndpointRequest{
		Spec: &nexuspb.EndpointSpec{
			Name: endpoint,
			Target: &nexuspb.EndpointTarget{Variant: &nexuspb.EndpointTarget_Worker_{
				Worker: &nexuspb.EndpointTarget_Worker{Namespace: "default", TaskQueue: taskQueue},
			}},
		},
	})
	if err != nil {
		t.Fatalf("create endpoint: %v", err)
	}
	return taskQueue, endpoint
}

func TestNexusSyncOperationCompletesWithoutAStartedEvent(t *testing.T) {
	ctx := within(t, 60*time.Second)
	taskQueue, endpoint := nexusSetup(t, ctx)
	id := uniqueID(t, "wf")
	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, callOperation, endpoint, "say-hello", "world", time.Minute)
	if got := result[string](t, ctx, run); got != "Hello, world!" {
		t.Fatalf("result %q", got)
	}
	events := history(t, ctx, id, run.GetRunID())
	if n := len(eventsOfType(events, enumspb.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED)); n != 1 {
		t.Fatalf("%d NexusOperationScheduled events: %v", n, eventTypes(events))
	}
	if n := len(eventsOfType(events, enumspb.EVENT_TYPE_NEXUS_OPERATION_COMPLETED)); n != 1 {
		t.Fatalf("%d NexusOperationCompleted events: %v", n, eventTypes(events))
	}
	if n := len(eventsOfType(events, enumspb.EVENT_TYPE_NEXUS_OPERATION_STARTED)); n != 0 {
		t.Fatalf("a sync operation was started: %v", eventTypes(events))
	}
	scheduled := eventsOfType(events, enumspb.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED)[0].GetNexusOperationScheduledEventAttributes()
	if scheduled.Endpoint != endpoint || scheduled.Service != greetingService || scheduled.Operation != "say-hello" || scheduled.EndpointId == "" {
		t.Fatalf("scheduled event %v", scheduled)
	}
}

func TestNexusWorkflowRunOperationCompletesThroughItsCallback(t *testing.T) {
	ctx := within(t, 60*time.Second)
	taskQueue, endpoint := nexusSetup(t, ctx)
	id := uniqueID(t, "wf")
	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, callOperation, endpoint, "greet-by-workflow", "async", time.Minute)
	if got := result[string](t, ctx, run); got != "Hello later, async!" {
		t.Fatalf("result %q", got)
	}
	types := eventTypes(history(t, ctx, id, run.GetRunID()))
	var nexusEvents []enumspb.EventType
	for _, et := range types {
		if strings.Contains(et.String(), "NexusOperation") {
			nexusEvents = append(nexusEvents, et)
		}
	}
	want := []enumspb.EventType{
		enumspb.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED,
		enumspb.EVENT_TYPE_NEXUS_OPERATION_STARTED,
		enumspb.EVENT_TYPE_NEXUS_OPERATION_COMPLETED,
	}
	if len(nexusEvents) != len(want) {
		t.Fatalf("Nexus events %v, want %v", nexusEvents, want)
	}
	for i := range want {
		if nexusEvents[i] != want[i] {
			t.Fatalf("Nexus events %v, want %v", nexusEvents, want)
		}
	}
}

func TestNexusHandlerErrorAndOperationFailureReachTheCaller(t *testing.T) {
	ctx := within(t, 60*time.Second)
	taskQueue, endpoint := nexusSetup(t, ctx)
	for _, tc := range []struct{ input, want string }{
		{"bad request", "a bad request"},
		{"refused", "the operation refused"},
	} {
		run := start(t, ctx, client.StartWorkflowOptions{ID: uniqueID(t, "wf"), TaskQueue: taskQueue}, callOperation, endpoint, "say-hello", tc.input, time.Minute)
		err := run.Get(ctx, nil)
		var opErr *temporal.NexusOperationError
		if !errors.As(err, &opErr) {
			t.Fatalf("%s: want a NexusOperationError, got %v", tc.input, err)
		}
		// The handler's own message is in the chain of causes.
		var causes []string
		for e := error(opErr); e != nil; e = errors.Unwrap(e) {
			causes = append(causes, e.Error())
		}
		if opErr.Endpoint != endpoint || opErr.Operation != "say-hello" || !strings.Contains(strings.Join(causes, " | "), tc.want) {
			t.Fatalf("%s: %v (causes %q)", tc.input, err, causes)
		}
	}
}

func TestNexusOperationTimesOutAtItsScheduleToCloseTimeout(t *testing.T) {
	ctx := within(t, 60*time.Second)
	taskQueue, endpoint := nexusSetup(t, ctx)
	id := uniqueID(t, "wf")
	began := time.Now()
	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, callOperation, endpoint, "say-hello", "slow", 2*time.Second)
	err := run.Get(ctx, nil)
	var timeoutErr *temporal.TimeoutError
	if !errors.As(err, &timeoutErr) || timeoutErr.TimeoutType() != enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE {
		t.Fatalf("want a schedule-to-close timeout, got %v", err)
	}
	if took := time.Since(began); took > 15*time.Second {
		t.Fatalf("the 2 s timeout took %v", took)
	}
	if n := len(eventsOfType(history(t, ctx, id, run.GetRunID()), enumspb.EVENT_TYPE_NEXUS_OPERATION_TIMED_OUT)); n != 1 {
		t.Fatalf("%d NexusOperationTimedOut events", n)
	}
}

func TestNexusCancellationReachesTheHandlerWorkflow(t *testing.T) {
	ctx := within(t, 60*time.Second)
	taskQueue, endpoint := nexusSetup(t, ctx)
	id := uniqueID(t, "wf")
	run := start(t, ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue}, cancelOperation, endpoint)
	err := run.Get(ctx, nil)
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) {
		t.Fatalf("want the operation canceled, got %v", err)
	}
	events := history(t, ctx, id, run.GetRunID())
	for _, et := range []enumspb.EventType{
		enumspb.EVENT_TYPE_NEXUS_OPERATION_STARTED,
		enumspb.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED,
		enumspb.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED,
		enumspb.EVENT_TYPE_NEXUS_OPERATION_CANCELED,
	} {
		if len(eventsOfType(events, et)) != 1 {
			t.Fatalf("want one %v in %v", et, eventTypes(events))
		}
	}
	// The handler's workflow was canceled by the request.
	started := eventsOfType(events, enumspb.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED)[0]
	handlerID := "greet-" + started.GetNexusOperationScheduledEventAttributes().RequestId
	desc, err := env.client.DescribeWorkflowExecution(ctx, handlerID, "")
	if err != nil {
		t.Fatalf("describe the handler's workflow %s: %v", handlerID, err)
	}
	if status := desc.WorkflowExecutionInfo.Status; status != enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED {
		t.Fatalf("the handler's workflow is %v", status)
	}
}
