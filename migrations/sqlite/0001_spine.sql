-- The spine: makerspaces, equipment, and the live state each machine's actor persists.
-- Timestamps are RFC 3339 text (sqlx's chrono encoding); JSON is text.

CREATE TABLE makerspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    location    TEXT,
    timezone    TEXT NOT NULL DEFAULT 'UTC',
    currency    TEXT NOT NULL DEFAULT 'USD',
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE equipment (
    id                   TEXT PRIMARY KEY,
    makerspace_id        TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    name                 TEXT NOT NULL,
    type                 TEXT NOT NULL,
    admin_status         TEXT NOT NULL DEFAULT 'available',
    location             TEXT,
    specifications       TEXT NOT NULL DEFAULT '{}',
    skill_requirements   TEXT NOT NULL DEFAULT '[]',
    hourly_rate          REAL,
    maintenance_schedule TEXT,
    connection           TEXT NOT NULL DEFAULT '{"kind":"mqtt"}',
    heartbeat_timeout_s  INTEGER NOT NULL,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX equipment_by_makerspace ON equipment (makerspace_id, type);

-- The last persisted live state of each machine: what an actor restarts from.
CREATE TABLE machine_states (
    equipment_id TEXT PRIMARY KEY REFERENCES equipment(id) ON DELETE CASCADE,
    state        TEXT NOT NULL,
    since        TEXT NOT NULL,
    live         TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- Every state transition, for history and later utilization analytics.
CREATE TABLE machine_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    equipment_id  TEXT NOT NULL,
    makerspace_id TEXT NOT NULL,
    from_state    TEXT NOT NULL,
    to_state      TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX machine_events_by_equipment ON machine_events (equipment_id, at);
