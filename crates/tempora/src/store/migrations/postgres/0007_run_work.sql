-- The work index: what each open run waits on (timers with their due time, tasks to offer,
-- work owed to other runs; due 0 means at once), derived from its mutable state and rewritten
-- in the same transaction. A restart reads what is due from here instead of loading runs.
CREATE TABLE run_work (
    run_id      TEXT NOT NULL,
    item        TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    shard       INTEGER NOT NULL,
    due_ms      BIGINT NOT NULL,
    PRIMARY KEY (run_id, item)
);
CREATE INDEX run_work_due ON run_work (due_ms);
