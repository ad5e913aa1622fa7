-- Runs per (namespace, status), kept by triggers in the same transaction as the visibility
-- rows, so Count and `GROUP BY ExecutionStatus` without a filter read a handful of rows
-- instead of scanning every run. Internal runs (with a namespace division) are not counted,
-- as ordinary queries do not see them.
CREATE TABLE visibility_counts (
    namespace TEXT NOT NULL,
    status    INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (namespace, status)
) WITHOUT ROWID;

INSERT INTO visibility_counts (namespace, status, n)
    SELECT namespace, status, COUNT(*) FROM visibility WHERE namespace_division IS NULL GROUP BY namespace, status;

CREATE TRIGGER visibility_count_insert AFTER INSERT ON visibility
WHEN NEW.namespace_division IS NULL
BEGIN
    INSERT INTO visibility_counts (namespace, status, n) VALUES (NEW.namespace, NEW.status, 1)
        ON CONFLICT (namespace, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER visibility_count_delete AFTER DELETE ON visibility
WHEN OLD.namespace_division IS NULL
BEGIN
    UPDATE visibility_counts SET n = n - 1 WHERE namespace = OLD.namespace AND status = OLD.status;
END;

CREATE TRIGGER visibility_count_update AFTER UPDATE OF status, namespace_division ON visibility
WHEN OLD.status IS NOT NEW.status OR OLD.namespace_division IS NOT NEW.namespace_division
BEGIN
    UPDATE visibility_counts SET n = n - 1
        WHERE OLD.namespace_division IS NULL AND namespace = OLD.namespace AND status = OLD.status;
    INSERT INTO visibility_counts (namespace, status, n)
        SELECT NEW.namespace, NEW.status, 1 WHERE NEW.namespace_division IS NULL
        ON CONFLICT (namespace, status) DO UPDATE SET n = n + 1;
END;
