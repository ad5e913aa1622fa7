-- The cluster (`--cluster`): nodes and the leases of the run shards. Every time is the
-- database's (`now()`), never a node's clock. A shard's epoch only moves forward: each new
-- owner bumps it, and every write of one of the shard's runs checks it in its transaction, so
-- a node that lost a lease can never commit to its runs.
CREATE TABLE cluster_nodes (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE shard_leases (
    shard      INTEGER PRIMARY KEY,
    owner      TEXT,
    epoch      BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);
INSERT INTO shard_leases (shard) SELECT generate_series(0, 255);
CREATE INDEX run_work_shard ON run_work (shard, due_ms);
