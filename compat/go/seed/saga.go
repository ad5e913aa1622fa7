package seed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Transfer is the input of TransferMoney.
type Transfer struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int    `json:"amount"`
	// Seconds to wait (on a durable timer) between the compensations, so a person can stop
	// and restart the worker while the saga compensates.
	PauseInCompensationSecs int `json:"pause_in_compensation_secs"`
}

// Ledger keeps every bank call, in order.
type Ledger struct {
	mu      sync.Mutex
	entries []string
}

func (l *Ledger) record(ctx context.Context, entry string) {
	activity.GetLogger(ctx).Info("bank: " + entry)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, entry)
}

// Entries returns a copy of what was recorded so far.
func (l *Ledger) Entries() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.entries...)
}

// Bank is a bank whose third step always fails. Its exported methods are the activities.
type Bank struct {
	Ledger *Ledger
}

// NewBank returns a bank with an empty ledger.
func NewBank() *Bank { return &Bank{Ledger: &Ledger{}} }

func (b *Bank) Withdraw(ctx context.Context, t Transfer) error {
	b.Ledger.record(ctx, fmt.Sprintf("withdraw %d from %s", t.Amount, t.From))
	return nil
}

func (b *Bank) Deposit(ctx context.Context, t Transfer) error {
	b.Ledger.record(ctx, fmt.Sprintf("deposit %d to %s", t.Amount, t.To))
	return nil
}

func (b *Bank) StepWithError(ctx context.Context, t Transfer) error {
	b.Ledger.record(ctx, fmt.Sprintf("step with error, attempt %d", activity.GetInfo(ctx).Attempt))
	return errors.New("this step always fails")
}

func (b *Bank) UndoDeposit(ctx context.Context, t Transfer) error {
	b.Ledger.record(ctx, fmt.Sprintf("undo deposit %d to %s", t.Amount, t.To))
	return nil
}

func (b *Bank) UndoWithdraw(ctx context.Context, t Transfer) error {
	b.Ledger.record(ctx, fmt.Sprintf("undo withdraw %d from %s", t.Amount, t.From))
	return nil
}

// Saga holds the activity settings of TransferMoney.
type Saga struct {
	RetryPolicy         temporal.RetryPolicy
	StartToCloseTimeout time.Duration
}

// DefaultSaga is the seed's setting: 1 s initial interval, ×2, at most 1 min, 3 attempts,
// 10 s start-to-close.
func DefaultSaga() Saga {
	return Saga{
		RetryPolicy: temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2.0,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    3,
		},
		StartToCloseTimeout: 10 * time.Second,
	}
}

// TransferFailed is the application error type TransferMoney fails with after compensating.
const TransferFailed = "TransferFailed"

// TransferMoney withdraws, deposits, then runs a step that always fails. When a step fails,
// the compensations of the steps done so far run in reverse order, and the workflow fails with
// a TransferFailed application error whose cause is the step's error.
func (s Saga) TransferMoney(ctx workflow.Context, t Transfer) (string, error) {
	policy := s.RetryPolicy
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: s.StartToCloseTimeout,
		RetryPolicy:         &policy,
	})
	var b *Bank
	steps := []struct{ do, undo any }{
		{b.Withdraw, b.UndoWithdraw},
		{b.Deposit, b.UndoDeposit},
		{b.StepWithError, nil},
	}
	var compensations []any
	for _, step := range steps {
		err := workflow.ExecuteActivity(ctx, step.do, t).Get(ctx, nil)
		if err != nil {
			if cerr := compensate(ctx, compensations, t); cerr != nil {
				return "", cerr
			}
			msg := fmt.Sprintf("transfer of %d failed; compensated %d step(s)", t.Amount, len(compensations))
			return "", temporal.NewApplicationErrorWithCause(msg, TransferFailed, err)
		}
		if step.undo != nil {
			compensations = append(compensations, step.undo)
		}
	}
	return fmt.Sprintf("transferred %d from %s to %s", t.Amount, t.From, t.To), nil
}

// compensate runs the compensations in reverse order, even if the workflow is being cancelled.
func compensate(ctx workflow.Context, compensations []any, t Transfer) error {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	for i := len(compensations) - 1; i >= 0; i-- {
		if i < len(compensations)-1 && t.PauseInCompensationSecs > 0 {
			if err := workflow.Sleep(ctx, time.Duration(t.PauseInCompensationSecs)*time.Second); err != nil {
				return err
			}
		}
		if err := workflow.ExecuteActivity(ctx, compensations[i], t).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}
