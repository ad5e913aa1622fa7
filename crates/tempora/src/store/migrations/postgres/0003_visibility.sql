-- Text columns use the "C" collation: byte order as on SQLite, and prefix LIKE can use the indexes.
-- Visibility: one row per run, read by List/Count (written with the run's state, in the same
-- transaction). Times are Unix nanoseconds; sort_time is close_time, or the largest integer
-- while running, so "running first, then latest closed" is one descending index.
CREATE TABLE visibility (
    run_id                 TEXT COLLATE "C" PRIMARY KEY,
    namespace              TEXT COLLATE "C" NOT NULL,
    workflow_id            TEXT COLLATE "C" NOT NULL,
    workflow_type          TEXT COLLATE "C" NOT NULL,
    status                 BIGINT NOT NULL,
    task_queue             TEXT COLLATE "C" NOT NULL,
    start_time             BIGINT NOT NULL,
    execution_time         BIGINT NOT NULL,
    close_time             BIGINT,
    sort_time              BIGINT NOT NULL,
    execution_duration     BIGINT,
    history_length         BIGINT NOT NULL,
    history_size_bytes     BIGINT NOT NULL,
    state_transition_count BIGINT NOT NULL,
    parent_workflow_id     TEXT COLLATE "C",
    parent_run_id          TEXT COLLATE "C",
    root_workflow_id       TEXT COLLATE "C" NOT NULL,
    root_run_id            TEXT COLLATE "C" NOT NULL,
    namespace_division     TEXT COLLATE "C",
    info                   BYTEA NOT NULL
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
    run_id       TEXT COLLATE "C" NOT NULL,
    namespace    TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    value_text   TEXT COLLATE "C",
    value_int    BIGINT,
    value_double DOUBLE PRECISION
);
CREATE INDEX visibility_attributes_run ON visibility_attributes (run_id);
CREATE INDEX visibility_attributes_text ON visibility_attributes (namespace, name, value_text);
CREATE INDEX visibility_attributes_int ON visibility_attributes (namespace, name, value_int);
CREATE INDEX visibility_attributes_double ON visibility_attributes (namespace, name, value_double);
