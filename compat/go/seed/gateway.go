package seed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// StartRequest is the body of POST /start.
type StartRequest struct {
	Name       string `json:"name"`
	Count      int    `json:"count"`
	WorkflowID string `json:"workflow_id,omitempty"`
}

// Started answers POST /start and POST /transfer.
type Started struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Result     string `json:"result"`
}

// Fetched answers GET /result/{workflow_id}.
type Fetched struct {
	WorkflowID string `json:"workflow_id"`
	Result     string `json:"result"`
}

// Gateway starts workflows from JSON requests and answers with their results.
type Gateway struct {
	Client client.Client
}

// Handler routes:
//
//	POST /start                  {"name", "count", "workflow_id" (optional)}: starts YourWorkflowDefinition, waits, answers Started
//	POST /transfer               a Transfer: starts TransferMoney, waits, answers Started
//	GET  /result/{workflow_id}   the result of a workflow by its ID alone
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /start", g.start)
	mux.HandleFunc("POST /transfer", g.transfer)
	mux.HandleFunc("GET /result/{workflow_id}", g.result)
	return mux
}

func (g *Gateway) start(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	id := req.WorkflowID
	if id == "" {
		id = "your-workflow-" + uuid.NewString()
	}
	g.startAndWait(w, r.Context(), id, YourWorkflowDefinition, YourParam{Name: req.Name, Count: req.Count})
}

func (g *Gateway) transfer(w http.ResponseWriter, r *http.Request) {
	var t Transfer
	if err := json.NewDecoder(r.Body).Decode(&t); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	g.startAndWait(w, r.Context(), "transfer-"+uuid.NewString(), "TransferMoney", t)
}

func (g *Gateway) startAndWait(w http.ResponseWriter, ctx context.Context, id string, workflow any, input any) {
	run, err := g.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: TaskQueue}, workflow, input)
	if err != nil {
		fail(w, http.StatusBadGateway, fmt.Errorf("start: %w", err))
		return
	}
	var result string
	if err := run.Get(ctx, &result); err != nil {
		fail(w, http.StatusBadGateway, err)
		return
	}
	reply(w, Started{WorkflowID: run.GetID(), RunID: run.GetRunID(), Result: result})
}

func (g *Gateway) result(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("workflow_id")
	var result string
	if err := g.Client.GetWorkflow(r.Context(), id, "").Get(r.Context(), &result); err != nil {
		status := http.StatusBadGateway
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			status = http.StatusNotFound
		}
		fail(w, status, err)
		return
	}
	reply(w, Fetched{WorkflowID: id, Result: result})
}

func reply(w http.ResponseWriter, body any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func fail(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
