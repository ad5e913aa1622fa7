-- Runs per (namespace, status), kept by a trigger in the same transaction as the visibility
-- rows, so Count and `GROUP BY ExecutionStatus` without a filter read a handful of rows
-- instead of scanning every run. Internal runs (with a namespace division) are not counted,
-- as ordinary queries do not see them. Only a change of status touches a counter.
CREATE TABLE visibility_counts (
    namespace TEXT COLLATE "C" NOT NULL,
    status    BIGINT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (namespace, status)
);

INSERT INTO visibility_counts (namespace, status, n)
    SELECT namespace, status, COUNT(*) FROM visibility WHERE namespace_division IS NULL GROUP BY namespace, status;

CREATE FUNCTION visibility_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status
        AND OLD.namespace_division IS NOT DISTINCT FROM NEW.namespace_division THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.namespace_division IS NULL THEN
        UPDATE visibility_counts SET n = n - 1 WHERE namespace = OLD.namespace AND status = OLD.status;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.namespace_division IS NULL THEN
        INSERT INTO visibility_counts (namespace, status, n) VALUES (NEW.namespace, NEW.status, 1)
            ON CONFLICT (namespace, status) DO UPDATE SET n = visibility_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER visibility_count AFTER INSERT OR DELETE OR UPDATE OF status, namespace_division ON visibility
    FOR EACH ROW EXECUTE FUNCTION visibility_count();
