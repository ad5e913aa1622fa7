-- Namespaces: name → JSON record (id, description, owner, retention).
CREATE TABLE namespaces (
    name TEXT PRIMARY KEY,
    id   TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);

-- One row per workflow run: its mutable state (JSON) and status (WorkflowExecutionStatus).
CREATE TABLE executions (
    run_id      TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    status      INTEGER NOT NULL,
    state       BYTEA NOT NULL
);
CREATE INDEX executions_by_status ON executions (status);
CREATE INDEX executions_by_workflow ON executions (namespace, workflow_id);

-- The current (latest) run of each workflow id.
CREATE TABLE current_executions (
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    PRIMARY KEY (namespace, workflow_id)
);

-- History events, append-only; data is a temporal.api.history.v1.HistoryEvent.
CREATE TABLE history_events (
    run_id   TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (run_id, event_id)
);
