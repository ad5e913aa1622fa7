-- Records: small durable objects that are not runs (Nexus endpoints, task-queue configs,
-- schedules). One JSON document per (kind, scope, id); read whole at start.
CREATE TABLE records (
    kind  TEXT NOT NULL,
    scope TEXT NOT NULL,
    id    TEXT NOT NULL,
    data  TEXT NOT NULL,
    PRIMARY KEY (kind, scope, id)
);
