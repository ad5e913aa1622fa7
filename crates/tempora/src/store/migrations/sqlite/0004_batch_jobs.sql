-- Batch operations (StartBatchOperation): one row per job, data is its JSON record (request,
-- state, progress and the cursor it resumes from after a restart).
CREATE TABLE batch_jobs (
    namespace TEXT NOT NULL,
    job_id    TEXT NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (namespace, job_id)
);
