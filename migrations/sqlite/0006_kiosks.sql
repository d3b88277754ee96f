-- Shop-floor kiosks (devices that unlock machines for members' cards) and every attempt.

CREATE TABLE kiosks (
    id            TEXT PRIMARY KEY,
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- SHA-256 of the device token: the token is shown once, when the kiosk is registered.
    token_hash    TEXT NOT NULL UNIQUE,
    -- The machines this kiosk may unlock (JSON list); empty: every machine of the space.
    equipment_ids TEXT NOT NULL DEFAULT '[]',
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);
CREATE INDEX kiosks_by_space ON kiosks (makerspace_id);

-- The audit log of the floor: every unlock attempt, granted or denied, with its reason.
CREATE TABLE kiosk_attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    makerspace_id TEXT NOT NULL,
    kiosk_id      TEXT NOT NULL,
    equipment_id  TEXT NOT NULL,
    -- The card's last characters (never the UID), and whom it belonged to.
    card_hint     TEXT,
    member_id     TEXT,
    user_id       TEXT,
    action        TEXT NOT NULL,
    granted       INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    session_id    TEXT,
    at            TEXT NOT NULL
);
CREATE INDEX kiosk_attempts_by_space ON kiosk_attempts (makerspace_id, at);
