-- Optimistic concurrency: each execution row carries the number of transitions committed to
-- it; an update must name the version it read.
ALTER TABLE executions ADD COLUMN db_version BIGINT NOT NULL DEFAULT 0;
