package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Worker versioning (worker deployments): each test has a deployment of its own, with two
// versions of the same workflow type on one task queue.

func waitForSignalV1(ctx workflow.Context) (string, error) {
	var value string
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, &value)
	return value + "_v1", nil
}

func waitForSignalV2(ctx workflow.Context) (string, error) {
	var value string
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, &value)
	return value + "_v2", nil
}

// versionedWorker runs a worker of `deployment`'s build `build` on taskQueue, with the
// workflow type "WaitForSignal" implemented by wf and the given behavior.
func versionedWorker(t *testing.T, taskQueue, deployment, build string, behavior workflow.VersioningBehavior, wf any) {
	t.Helper()
	w := worker.New(env.workers, taskQueue, worker.Options{
		DeploymentOptions: worker.DeploymentOptions{
			UseVersioning: true,
			Version:       worker.WorkerDeploymentVersion{DeploymentName: deployment, BuildID: build},
		},
	})
	w.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: "WaitForSignal", VersioningBehavior: behavior})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker %s/%s: %v", deployment, build, err)
	}
	t.Cleanup(w.Stop)
}

// setCurrent waits until the version's workers registered, then makes it current.
func setCurrent(t *testing.T, ctx context.Context, deployment, build string) {
	t.Helper()
	handle := env.client.WorkerDeploymentClient().GetHandle(deployment)
	var token []byte
	eventually(t, ctx, "version "+build+" registered", func() bool {
		d, err := handle.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
		if err != nil {
			return false
		}
		token = d.ConflictToken
		for _, v := range d.Info.VersionSummaries {
			if v.Version.BuildID == build {
				return true
			}
		}
		return false
	})
	if _, err := handle.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: build, ConflictToken: token}); err != nil {
		t.Fatalf("set current version %s: %v", build, err)
	}
	// Temporal applies a routing change to its task queues asynchronously.
	eventually(t, ctx, "routing of "+build+" propagated", func() bool {
		resp, err := env.client.WorkflowService().DescribeWorkerDeployment(ctx, &workflowservice.DescribeWorkerDeploymentRequest{
			Namespace: "default", DeploymentName: deployment,
		})
		if err != nil {
			return false
		}
		state := resp.GetWorkerDeploymentInfo().GetRoutingConfigUpdateState()
		return state == enumspb.ROUTING_CONFIG_UPDATE_STATE_COMPLETED || state == enumspb.ROUTING_CONFIG_UPDATE_STATE_UNSPECIFIED
	})
}

func versioningSetup(t *testing.T, behavior workflow.VersioningBehavior) (string, string) {
	taskQueue := uniqueID(t, "tq")
	deployment := strings.ReplaceAll(uniqueID(t, "deployment"), "_", "-")
	versionedWorker(t, taskQueue, deployment, "1.0", behavior, waitForSignalV1)
	versionedWorker(t, taskQueue, deployment, "2.0", behavior, waitForSignalV2)
	return taskQueue, deployment
}

// runAcrossAVersionChange starts a workflow on version 1.0, makes 2.0 current, signals it,
// and returns its result.
func runAcrossAVersionChange(t *testing.T, ctx context.Context, taskQueue, deployment string, opts client.StartWorkflowOptions) string {
	setCurrent(t, ctx, deployment, "1.0")
	opts.ID, opts.TaskQueue = uniqueID(t, "wf"), taskQueue
	run := start(t, ctx, opts, "WaitForSignal")
	waitForEvent(t, ctx, opts.ID, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
	setCurrent(t, ctx, deployment, "2.0")
	if err := env.client.SignalWorkflow(ctx, run.GetID(), run.GetRunID(), "go", "prefix"); err != nil {
		t.Fatal(err)
	}
	return result[string](t, ctx, run)
}

func TestVersioningPinnedWorkflowStaysOnItsVersion(t *testing.T) {
	ctx := within(t, 60*time.Second)
	taskQueue, deployment := versioningSetup(t, workflow.VersioningBehaviorPinned)
	if got := runAcrossAVersionChange(t, ctx, taskQueue, deployment, client.StartWorkflowOptions{}); got != "prefix_v1" {
		t.Fatalf("result %q, want prefix_v1", got)
	}
}

func TestVersioningAutoUpgradeWorkflowMovesToTheCurrentVersion(t *testing.T) {
	ctx := within(t, 60*time.Second)
	taskQueue, deployment := versioningSetup(t, workflow.VersioningBehaviorAutoUpgrade)
	if got := runAcrossAVersionChange(t, ctx, taskQueue, deployment, client.StartWorkflowOptions{}); got != "prefix_v2" {
		t.Fatalf("result %q, want prefix_v2", got)
	}
}

func TestVersioningOverridePinsAnAutoUpgradeWorkflow(t *testing.T) {
	ctx := within(t, 60*time.Second)
	taskQueue, deployment := versioningSetup(t, workflow.VersioningBehaviorAutoUpgrade)
	opts := client.StartWorkflowOptions{VersioningOverride: &client.PinnedVersioningOverride{
		Version: worker.WorkerDeploymentVersion{DeploymentName: deployment, BuildID: "1.0"},
	}}
	if got := runAcrossAVersionChange(t, ctx, taskQueue, deployment, opts); got != "prefix_v1" {
		t.Fatalf("result %q, want prefix_v1", got)
	}
}

func TestVersioningDeploymentsAreListedDescribedAndGuardedByTheirConflictToken(t *testing.T) {
	ctx := within(t, 60*time.Second)
	_, deployment := versioningSetup(t, workflow.VersioningBehaviorPinned)
	setCurrent(t, ctx, deployment, "1.0")
	handle := env.client.WorkerDeploymentClient().GetHandle(deployment)
	d, err := handle.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Info.RoutingConfig.CurrentVersion == nil || d.Info.RoutingConfig.CurrentVersion.BuildID != "1.0" || len(d.Info.VersionSummaries) != 2 {
		t.Fatalf("describe: %+v", d.Info)
	}
	// A change made from a stale read is refused.
	stale := d.ConflictToken
	if _, err := handle.SetRampingVersion(ctx, client.WorkerDeploymentSetRampingVersionOptions{BuildID: "2.0", Percentage: 10, ConflictToken: stale}); err != nil {
		t.Fatalf("ramp: %v", err)
	}
	if _, err := handle.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: "2.0", ConflictToken: stale}); err == nil {
		t.Fatal("a stale conflict token was accepted")
	}
	// The current version cannot be deleted; another can.
	if _, err := handle.DeleteVersion(ctx, client.WorkerDeploymentDeleteVersionOptions{BuildID: "1.0", SkipDrainage: true}); err == nil {
		t.Fatal("the current version was deleted")
	}
	// Once another client manages the deployment, this one cannot change it until it takes
	// over the management itself.
	if _, err := handle.SetManagerIdentity(ctx, client.WorkerDeploymentSetManagerIdentityOptions{ManagerIdentity: "release-bot"}); err != nil {
		t.Fatalf("set manager: %v", err)
	}
	if _, err := handle.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: "2.0"}); err == nil {
		t.Fatal("a client that is not the manager changed the deployment")
	}
	if _, err := handle.SetManagerIdentity(ctx, client.WorkerDeploymentSetManagerIdentityOptions{Self: true}); err != nil {
		t.Fatalf("take over the management: %v", err)
	}
	if _, err := handle.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: "2.0"}); err != nil {
		t.Fatalf("the manager could not change the deployment: %v", err)
	}
	found := false
	iter, err := env.client.WorkerDeploymentClient().List(ctx, client.WorkerDeploymentListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for iter.HasNext() {
		summary, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		found = found || summary.Name == deployment
	}
	if !found {
		t.Fatalf("deployment %s not listed", deployment)
	}
}
