package tests

// The seed's programs (package seed), run against the server on the seed's own task queue.
// These tests share that queue, so they run one after another (not in parallel).

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"tempora.dev/compat/go/seed"
)

func seedActivities() *seed.YourActivityObject {
	return &seed.YourActivityObject{Message: "Hi", Number: 7}
}

// fastSaga is the seed's saga with short retry intervals.
func fastSaga() seed.Saga {
	saga := seed.DefaultSaga()
	saga.RetryPolicy.InitialInterval = 100 * time.Millisecond
	saga.RetryPolicy.MaximumInterval = time.Second
	return saga
}

// startSeedWorker runs the seed's worker (registrations as in cmd/worker) on seed.TaskQueue.
// The returned stop is idempotent and also runs when the test ends.
func startSeedWorker(t *testing.T, bank *seed.Bank) (stop func()) {
	t.Helper()
	w := worker.New(env.workers, seed.TaskQueue, worker.Options{})
	seed.Register(w, seedActivities(), bank, fastSaga())
	if err := w.Start(); err != nil {
		t.Fatalf("start seed worker: %v", err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			w.Stop()
		}
	}
	t.Cleanup(stop)
	return stop
}

func seedStartOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: id, TaskQueue: seed.TaskQueue}
}

func TestSeedYourWorkflowDefinitionRunsThreeActivitiesEachFeedingTheNext(t *testing.T) {
	ctx := within(t, 30*time.Second)
	startSeedWorker(t, seed.NewBank())
	id := uniqueID(t, "wf")

	run := start(t, ctx, seedStartOptions(id), seed.YourWorkflowDefinition, seed.YourParam{Name: "Ada", Count: 2})
	got := result[string](t, ctx, run)

	want := "Hi Ada (count 2, number 7) [workflow " + id + ", via GetInfo attempt 1]"
	if got != want {
		t.Fatalf("result = %q, want %q", got, want)
	}

	events := history(t, ctx, id, run.GetRunID())
	scheduled := eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
	var names []string
	for _, e := range scheduled {
		names = append(names, e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName())
	}
	if want := []string{"YourActivityDefinition", "GetInfo", "PrintInfo"}; !slices.Equal(names, want) {
		t.Fatalf("activities scheduled = %v, want %v", names, want)
	}
	// Each activity's input is the previous one's result, byte for byte.
	completed := map[int64]*historypb.HistoryEvent{}
	for _, e := range eventsOfType(events, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
		completed[e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()] = e
	}
	for i := 1; i < len(scheduled); i++ {
		prev, ok := completed[scheduled[i-1].GetEventId()]
		if !ok {
			t.Fatalf("no completion for activity %s", names[i-1])
		}
		output := prev.GetActivityTaskCompletedEventAttributes().GetResult().GetPayloads()
		input := scheduled[i].GetActivityTaskScheduledEventAttributes().GetInput().GetPayloads()
		if len(output) != 1 || len(input) != 1 || !bytes.Equal(output[0].GetData(), input[0].GetData()) {
			t.Fatalf("%s's input %v is not %s's result %v", names[i], input, names[i-1], output)
		}
	}
}

func TestSeedCustomNamesAreWhatTheServerSees(t *testing.T) {
	ctx := within(t, 30*time.Second)
	startSeedWorker(t, seed.NewBank())
	id := uniqueID(t, "another")

	run := start(t, ctx, seedStartOptions(id), "JustAnotherWorkflow", "ping")
	if got := result[string](t, ctx, run); got != "Hi: ping" {
		t.Fatalf("result = %q, want %q", got, "Hi: ping")
	}

	var names []string
	for _, e := range history(t, ctx, id, run.GetRunID()) {
		if a := e.GetWorkflowExecutionStartedEventAttributes(); a != nil {
			names = append(names, a.GetWorkflowType().GetName())
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			names = append(names, a.GetActivityType().GetName())
		}
	}
	if want := []string{"JustAnotherWorkflow", "JustAnotherActivity"}; !slices.Equal(names, want) {
		t.Fatalf("types in history = %v, want %v", names, want)
	}

	desc, err := env.client.DescribeWorkflowExecution(ctx, id, run.GetRunID())
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if got := desc.GetWorkflowExecutionInfo().GetType().GetName(); got != "JustAnotherWorkflow" {
		t.Fatalf("described type = %q, want JustAnotherWorkflow", got)
	}
}

// httpCall makes one request to the gateway and returns the status and body.
func httpCall(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, out
}

func TestSeedGatewayStartsWorkflowsAndFetchesResultsByID(t *testing.T) {
	startSeedWorker(t, seed.NewBank())
	gateway := httptest.NewServer((&seed.Gateway{Client: env.client}).Handler())
	defer gateway.Close()
	id := uniqueID(t, "gw")

	status, body := httpCall(t, "POST", gateway.URL+"/start", `{"name": "Ada", "count": 2, "workflow_id": "`+id+`"}`)
	if status != http.StatusOK {
		t.Fatalf("POST /start: status %d, body %s", status, body)
	}
	var started seed.Started
	if err := json.Unmarshal(body, &started); err != nil {
		t.Fatalf("POST /start: %v in %s", err, body)
	}
	want := "Hi Ada (count 2, number 7) [workflow " + id + ", via GetInfo attempt 1]"
	if started.WorkflowID != id || started.RunID == "" || started.Result != want {
		t.Fatalf("POST /start answered %+v, want workflow_id %q, a run_id, result %q", started, id, want)
	}

	status, body = httpCall(t, "GET", gateway.URL+"/result/"+id, "")
	if status != http.StatusOK {
		t.Fatalf("GET /result/%s: status %d, body %s", id, status, body)
	}
	var fetched seed.Fetched
	if err := json.Unmarshal(body, &fetched); err != nil {
		t.Fatalf("GET /result: %v in %s", err, body)
	}
	if fetched != (seed.Fetched{WorkflowID: id, Result: want}) {
		t.Fatalf("GET /result/%s answered %+v, want result %q", id, fetched, want)
	}

	// Without a workflow_id the gateway makes one up.
	status, body = httpCall(t, "POST", gateway.URL+"/start", `{"name": "Bo", "count": 1}`)
	if status != http.StatusOK {
		t.Fatalf("POST /start without workflow_id: status %d, body %s", status, body)
	}
	started = seed.Started{}
	_ = json.Unmarshal(body, &started)
	if !strings.HasPrefix(started.WorkflowID, "your-workflow-") || !strings.HasPrefix(started.Result, "Hi Bo (count 1, number 7) [workflow your-workflow-") {
		t.Fatalf("POST /start without workflow_id answered %s", body)
	}

	never := uniqueID(t, "never-started")
	if status, body = httpCall(t, "GET", gateway.URL+"/result/"+never, ""); status != http.StatusNotFound {
		t.Fatalf("GET /result/%s: status %d (body %s), want 404", never, status, body)
	}
}

var compensated = []string{
	"withdraw 100 from alice",
	"deposit 100 to bob",
	"step with error, attempt 1",
	"step with error, attempt 2",
	"step with error, attempt 3",
	"undo deposit 100 to bob",
	"undo withdraw 100 from alice",
}

// checkTransferFailed checks the saga's failure: a TransferFailed application error caused by
// the activity error of StepWithError ("this step always fails") after its 3 attempts.
func checkTransferFailed(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("TransferMoney succeeded, want it to fail after compensating")
	}
	var wfErr *temporal.WorkflowExecutionError
	if !errors.As(err, &wfErr) {
		t.Fatalf("error %T %v, want a *temporal.WorkflowExecutionError", err, err)
	}
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != seed.TransferFailed ||
		appErr.Message() != "transfer of 100 failed; compensated 2 step(s)" {
		t.Fatalf("error %v, want an application error of type %s: transfer of 100 failed; compensated 2 step(s)", err, seed.TransferFailed)
	}
	var actErr *temporal.ActivityError
	if !errors.As(appErr.Unwrap(), &actErr) || actErr.ActivityType().GetName() != "StepWithError" {
		t.Fatalf("cause %v, want the activity error of StepWithError", appErr.Unwrap())
	}
	if actErr.RetryState() != enumspb.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED {
		t.Errorf("activity retry state %v, want MAXIMUM_ATTEMPTS_REACHED", actErr.RetryState())
	}
	var cause *temporal.ApplicationError
	if !errors.As(actErr.Unwrap(), &cause) || cause.Message() != "this step always fails" {
		t.Fatalf("activity error cause %v, want the application error \"this step always fails\"", actErr.Unwrap())
	}
}

func TestSeedSagaCompensatesInReverseOrder(t *testing.T) {
	ctx := within(t, 60*time.Second)
	bank := seed.NewBank()
	startSeedWorker(t, bank)
	id := uniqueID(t, "transfer")

	run := start(t, ctx, seedStartOptions(id), "TransferMoney", seed.Transfer{From: "alice", To: "bob", Amount: 100})
	checkTransferFailed(t, run.Get(ctx, nil))

	if got := bank.Ledger.Entries(); !slices.Equal(got, compensated) {
		t.Fatalf("bank calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(compensated, "\n  "))
	}
	desc, err := env.client.DescribeWorkflowExecution(ctx, id, run.GetRunID())
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if got := desc.GetWorkflowExecutionInfo().GetStatus(); got != enumspb.WORKFLOW_EXECUTION_STATUS_FAILED {
		t.Fatalf("status %v, want FAILED", got)
	}
}

func TestSeedSagaCompensationOrderSurvivesAWorkerRestart(t *testing.T) {
	ctx := within(t, 90*time.Second)
	bank := seed.NewBank()
	stopFirst := startSeedWorker(t, bank)
	id := uniqueID(t, "transfer-paused")

	transfer := seed.Transfer{From: "alice", To: "bob", Amount: 100, PauseInCompensationSecs: 2}
	run := start(t, ctx, seedStartOptions(id), "TransferMoney", transfer)

	// The first compensation completed and the workflow sleeps before the second: stop the worker.
	waitForEvent(t, ctx, id, enumspb.EVENT_TYPE_TIMER_STARTED)
	stopFirst()
	if got := bank.Ledger.Entries(); !slices.Equal(got, compensated[:6]) {
		t.Fatalf("when the first worker stopped, bank calls were:\n  %s\nwant:\n  %s",
			strings.Join(got, "\n  "), strings.Join(compensated[:6], "\n  "))
	}

	// A new worker (empty workflow cache) takes over and finishes compensating.
	startSeedWorker(t, bank)
	checkTransferFailed(t, run.Get(ctx, nil))
	if got := bank.Ledger.Entries(); !slices.Equal(got, compensated) {
		t.Fatalf("bank calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(compensated, "\n  "))
	}
}
