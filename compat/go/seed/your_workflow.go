// Package seed holds the seed's programs written with the official Temporal Go SDK, the way a
// Go user writes them. Nothing here knows it talks to tempora rather than Temporal.
//
//   - YourWorkflowDefinition: three activities in sequence (YourActivityDefinition, GetInfo,
//     PrintInfo), each feeding the next; the activities are methods on YourActivityObject,
//     which holds a message and a number.
//   - JustAnotherWorkflow / JustAnotherActivity: registered under custom names.
//   - TransferMoney: the money-transfer saga (withdraw, deposit, a step that always fails;
//     compensations in reverse order).
//   - Gateway: an HTTP front end (POST /start, POST /transfer, GET /result/{workflow_id}).
package seed

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"
)

// TaskQueue is the task queue the seed's worker polls and the gateway starts workflows on.
const TaskQueue = "your-custom-task-queue-name"

// YourParam is the parameter of YourWorkflowDefinition.
type YourParam struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// Info is what GetInfo reports about the running activity.
type Info struct {
	Previous     string `json:"previous"`
	WorkflowID   string `json:"workflow_id"`
	ActivityType string `json:"activity_type"`
	Attempt      int32  `json:"attempt"`
}

// YourActivityObject holds state given at registration: a message and a number. Its exported
// methods are the activities.
type YourActivityObject struct {
	Message string
	Number  int
}

// YourActivityDefinition is the parameterised step.
func (a *YourActivityObject) YourActivityDefinition(ctx context.Context, param YourParam) (string, error) {
	return fmt.Sprintf("%s %s (count %d, number %d)", a.Message, param.Name, param.Count, a.Number), nil
}

// GetInfo reports the activity's own workflow ID, type and attempt next to what it was given.
func (a *YourActivityObject) GetInfo(ctx context.Context, previous string) (Info, error) {
	info := activity.GetInfo(ctx)
	return Info{
		Previous:     previous,
		WorkflowID:   info.WorkflowExecution.ID,
		ActivityType: info.ActivityType.Name,
		Attempt:      info.Attempt,
	}, nil
}

// PrintInfo renders (and logs) the line the workflow returns.
func (a *YourActivityObject) PrintInfo(ctx context.Context, info Info) (string, error) {
	line := fmt.Sprintf("%s [workflow %s, via %s attempt %d]", info.Previous, info.WorkflowID, info.ActivityType, info.Attempt)
	activity.GetLogger(ctx).Info(line)
	return line, nil
}

// AnotherActivity is registered as "JustAnotherActivity".
func (a *YourActivityObject) AnotherActivity(ctx context.Context, input string) (string, error) {
	return fmt.Sprintf("%s: %s", a.Message, input), nil
}

func tenSeconds(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
}

// YourWorkflowDefinition runs three activities in sequence, each feeding the next.
func YourWorkflowDefinition(ctx workflow.Context, param YourParam) (string, error) {
	ctx = tenSeconds(ctx)
	var a *YourActivityObject // activities are referenced by method; the worker holds the instance

	var first string
	if err := workflow.ExecuteActivity(ctx, a.YourActivityDefinition, param).Get(ctx, &first); err != nil {
		return "", err
	}
	var info Info
	if err := workflow.ExecuteActivity(ctx, a.GetInfo, first).Get(ctx, &info); err != nil {
		return "", err
	}
	var line string
	if err := workflow.ExecuteActivity(ctx, a.PrintInfo, info).Get(ctx, &line); err != nil {
		return "", err
	}
	return line, nil
}

// AnotherWorkflow is registered as "JustAnotherWorkflow" and calls "JustAnotherActivity" by name.
func AnotherWorkflow(ctx workflow.Context, input string) (string, error) {
	var out string
	err := workflow.ExecuteActivity(tenSeconds(ctx), "JustAnotherActivity", input).Get(ctx, &out)
	return out, err
}
