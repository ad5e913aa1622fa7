-- Visibility: one row per run, read by List/Count (written with the run's state, in the same
-- transaction). Times are Unix nanoseconds; sort_time is close_time, or the largest integer
-- while running, so "running first, then latest closed" is one descending index.
CREATE TABLE visibility (
    run_id                 TEXT PRIMARY KEY,
    namespace              TEXT NOT NULL,
    workflow_id            TEXT NOT NULL,
    workflow_type          TEXT NOT NULL,
    status                 INTEGER NOT NULL,
    task_queue             TEXT NOT NULL,
    start_time             INTEGER NOT NULL,
    execution_time         INTEGER NOT NULL,
    close_time             INTEGER,
    sort_time              INTEGER NOT NULL,
    execution_duration     INTEGER,
    history_length         INTEGER NOT NULL,
    history_size_bytes     INTEGER NOT NULL,
    state_transition_count INTEGER NOT NULL,
    parent_workflow_id     TEXT,
    parent_run_id          TEXT,
    root_workflow_id       TEXT NOT NULL,
    root_run_id            TEXT NOT NULL,
    namespace_division     TEXT,
    info                   BLOB NOT NULL
);
CREATE INDEX visibility_order ON visibility (namespace, sort_time DESC, start_time DESC, run_id);
CREATE INDEX visibility_status ON visibility (namespace, status, sort_time DESC, start_time DESC);
CREATE INDEX visibility_workflow_id ON visibility (namespace, workflow_id);
CREATE INDEX visibility_workflow_type ON visibility (namespace, workflow_type, sort_time DESC);
CREATE INDEX visibility_start_time ON visibility (namespace, start_time);
CREATE INDEX visibility_close_time ON visibility (namespace, close_time);

-- Custom and predefined search attributes: one row per value (a KeywordList one per element,
-- a Text one per token); an attribute set without any value has one row of NULLs.
CREATE TABLE visibility_attributes (
    run_id       TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    name         TEXT NOT NULL,
    value_text   TEXT,
    value_int    INTEGER,
    value_double REAL
);
CREATE INDEX visibility_attributes_run ON visibility_attributes (run_id);
CREATE INDEX visibility_attributes_text ON visibility_attributes (namespace, name, value_text);
CREATE INDEX visibility_attributes_int ON visibility_attributes (namespace, name, value_int);
CREATE INDEX visibility_attributes_double ON visibility_attributes (namespace, name, value_double);
