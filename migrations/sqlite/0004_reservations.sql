-- The reservation book: bookings of machines for [start_at, end_at), and the waitlist.
-- Timestamps are RFC 3339 text in UTC (they compare correctly as text).

ALTER TABLE equipment ADD COLUMN requires_approval INTEGER NOT NULL DEFAULT 0;

CREATE TABLE reservations (
    id            TEXT PRIMARY KEY,
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    equipment_id  TEXT NOT NULL REFERENCES equipment(id) ON DELETE CASCADE,
    -- Whose booking it is (JWT sub).
    user_id       TEXT NOT NULL,
    -- booking, or maintenance (a window an admin blocks).
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    start_at      TEXT NOT NULL,
    end_at        TEXT NOT NULL,
    purpose       TEXT,
    created_by    TEXT NOT NULL,
    decided_by    TEXT,
    reason        TEXT,
    checked_in_at TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    CHECK (start_at < end_at)
);
CREATE INDEX reservations_by_equipment ON reservations (equipment_id, start_at);
CREATE INDEX reservations_by_space ON reservations (makerspace_id, start_at);
CREATE INDEX reservations_by_status ON reservations (status, start_at);

-- What happened to a booking, oldest first (no-shows are logged here).
CREATE TABLE reservation_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    reservation_id TEXT NOT NULL REFERENCES reservations(id) ON DELETE CASCADE,
    makerspace_id  TEXT NOT NULL,
    action         TEXT NOT NULL,
    actor          TEXT NOT NULL,
    at             TEXT NOT NULL
);
CREATE INDEX reservation_events_by_reservation ON reservation_events (reservation_id, id);

CREATE TABLE reservation_waitlist (
    id            TEXT PRIMARY KEY,
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    equipment_id  TEXT NOT NULL REFERENCES equipment(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL,
    start_at      TEXT NOT NULL,
    end_at        TEXT NOT NULL,
    -- waiting, offered, cancelled
    status        TEXT NOT NULL,
    offered_at    TEXT,
    created_at    TEXT NOT NULL,
    CHECK (start_at < end_at)
);
CREATE INDEX reservation_waitlist_by_equipment ON reservation_waitlist (equipment_id, status, created_at);
