-- Usage sessions: a member had a machine unlocked from started_at to ended_at.
-- Written by the machine's actor when a session ends (lock, time up, revocation).
CREATE TABLE usage_sessions (
    id            TEXT PRIMARY KEY,
    makerspace_id TEXT NOT NULL,
    equipment_id  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    member_id     TEXT,
    started_at    TEXT NOT NULL,
    ended_at      TEXT NOT NULL,
    minutes       REAL NOT NULL,
    -- The machine's hourly rate when the session ended, and the resulting charge.
    hourly_rate   REAL,
    cost          REAL NOT NULL,
    ended_by      TEXT NOT NULL,
    end_reason    TEXT NOT NULL
);
CREATE INDEX usage_sessions_by_equipment ON usage_sessions (equipment_id, started_at);
CREATE INDEX usage_sessions_by_user ON usage_sessions (user_id, started_at);
