package seed

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Register puts the seed's workflows and activities on a worker.
func Register(w worker.Registry, activities *YourActivityObject, bank *Bank, saga Saga) {
	w.RegisterWorkflow(YourWorkflowDefinition)
	w.RegisterWorkflowWithOptions(AnotherWorkflow, workflow.RegisterOptions{Name: "JustAnotherWorkflow"})
	w.RegisterWorkflowWithOptions(saga.TransferMoney, workflow.RegisterOptions{Name: "TransferMoney"})

	w.RegisterActivity(activities)
	w.RegisterActivityWithOptions(activities.AnotherActivity, activity.RegisterOptions{Name: "JustAnotherActivity"})
	w.RegisterActivity(bank)
}
