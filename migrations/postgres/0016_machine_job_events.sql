-- The job lifecycle events machines report (started, progress, paused, resumed, finished,
-- failed with a reason, cancelled), in the order they came: appended to, never rewritten.
CREATE TABLE machine_job_events (
    id            BIGSERIAL PRIMARY KEY,
    makerspace_id TEXT NOT NULL,
    equipment_id  TEXT NOT NULL,
    event         TEXT NOT NULL,
    -- The event as JSON (its file, progress or reason).
    detail        TEXT NOT NULL,
    at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX machine_job_events_by_equipment ON machine_job_events (equipment_id, id);
