-- Jobs (issue 12): uploaded files, content-addressed; the queue of jobs, one row per copy;
-- their transitions, appended to and never rewritten; bed clears.

-- A file is stored once, whoever uploads it again: its key is the SHA-256 of its bytes.
CREATE TABLE job_files (
    sha256      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    -- What its analysis found (geometry, slicer headers, plates, page size), as JSON.
    analysis    TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,
    makerspace_id       TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    owner_id            TEXT NOT NULL,
    -- The copies of one submission share a batch; each copy is its own job.
    batch_id            TEXT NOT NULL,
    copy_number         INTEGER NOT NULL,
    copies              INTEGER NOT NULL,
    file_sha256         TEXT NOT NULL REFERENCES job_files(sha256),
    file_name           TEXT NOT NULL,
    equipment_type      TEXT NOT NULL,
    -- What the job needs of a machine (material, colour, nozzle, tags), as JSON.
    requirements        TEXT NOT NULL,
    pinned_equipment_id TEXT,
    priority            INTEGER NOT NULL,
    status              TEXT NOT NULL,
    -- The machine it is assigned to or ran on last.
    equipment_id        TEXT,
    -- Machines it failed on: it is not sent there again.
    avoid_equipment     TEXT NOT NULL DEFAULT '[]',
    attempts            INTEGER NOT NULL DEFAULT 0,
    estimated_s         BIGINT,
    -- Thousandths of a gram, from the slicer or the quote.
    grams               BIGINT,
    progress            DOUBLE PRECISION,
    quotes              TEXT,
    chosen_quote        TEXT,
    -- Why it waits: the router's last verdict per machine, as JSON.
    wait_reasons        TEXT,
    failure_reason      TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ
);
CREATE INDEX jobs_by_space ON jobs (makerspace_id, status, created_at);
CREATE INDEX jobs_by_owner ON jobs (makerspace_id, owner_id, created_at);
CREATE INDEX jobs_by_equipment ON jobs (equipment_id, status);

CREATE TABLE job_transitions (
    id           BIGSERIAL PRIMARY KEY,
    job_id       TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    makerspace_id TEXT NOT NULL,
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    equipment_id TEXT,
    -- Who moved it: a user id, `router`, or the machine (`machine`).
    actor        TEXT NOT NULL,
    reason       TEXT,
    at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX job_transitions_by_job ON job_transitions (job_id, id);
CREATE INDEX job_transitions_failed_by_equipment ON job_transitions (equipment_id, to_status, at);
CREATE FUNCTION job_transitions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'job_transitions is append-only';
END;
$$;
CREATE TRIGGER job_transitions_append_only BEFORE UPDATE ON job_transitions
    FOR EACH ROW EXECUTE FUNCTION job_transitions_append_only();

-- A machine that finished a job waits for a person to confirm its bed is clear.
ALTER TABLE equipment ADD COLUMN auto_clear BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE bed_clears (
    id           BIGSERIAL PRIMARY KEY,
    equipment_id TEXT NOT NULL,
    makerspace_id TEXT NOT NULL,
    -- The job whose end made the machine wait, when known.
    job_id       TEXT,
    -- A user id, a kiosk or bridge device, or `auto` (the machine clears itself).
    cleared_by   TEXT NOT NULL,
    cleared_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX bed_clears_by_equipment ON bed_clears (equipment_id, id);
