-- Members of makerspaces, their plans, invitations, cards and activity log.

CREATE TABLE membership_plans (
    id              TEXT PRIMARY KEY,
    makerspace_id   TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT,
    price           REAL NOT NULL,
    billing_period  TEXT NOT NULL,
    -- Hours of access a day; NULL is unlimited.
    access_hours_per_day INTEGER,
    access_24_7     INTEGER NOT NULL,
    features        TEXT NOT NULL DEFAULT '[]',
    is_active       INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (makerspace_id, name)
);

CREATE TABLE members (
    id                TEXT PRIMARY KEY,
    makerspace_id     TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    -- The identity's subject (JWT sub); NULL for a member not yet signed in.
    user_id           TEXT,
    email             TEXT NOT NULL,
    first_name        TEXT NOT NULL,
    last_name         TEXT NOT NULL,
    phone             TEXT,
    role              TEXT NOT NULL,
    status            TEXT NOT NULL,
    plan_id           TEXT REFERENCES membership_plans(id),
    start_date        DATE NOT NULL,
    end_date          DATE,
    suspension_reason TEXT,
    notes             TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    deleted_at        TEXT
);
-- One live membership per email and per identity in a makerspace (deleted ones do not count).
CREATE UNIQUE INDEX members_email_unique ON members (makerspace_id, email) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX members_user_unique ON members (makerspace_id, user_id) WHERE deleted_at IS NULL AND user_id IS NOT NULL;
CREATE INDEX members_by_user ON members (user_id) WHERE deleted_at IS NULL;
CREATE INDEX members_by_plan ON members (plan_id);

CREATE TABLE member_activities (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id     TEXT NOT NULL,
    makerspace_id TEXT NOT NULL,
    action        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    details       TEXT NOT NULL DEFAULT '{}',
    at            TEXT NOT NULL
);
CREATE INDEX member_activities_by_member ON member_activities (member_id, id);

CREATE TABLE member_invites (
    id            TEXT PRIMARY KEY,
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    email         TEXT NOT NULL,
    role          TEXT NOT NULL,
    plan_id       TEXT REFERENCES membership_plans(id),
    message       TEXT,
    -- SHA-256 of the token: the token itself exists only in the email.
    token_hash    TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL,
    invited_by    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    sent_count    INTEGER NOT NULL,
    accepted_at   TEXT,
    accepted_by   TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX member_invites_by_space ON member_invites (makerspace_id, status);

CREATE TABLE member_cards (
    id            TEXT PRIMARY KEY,
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    member_id     TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    -- Keyed hash (HMAC-SHA256) of the card UID; the UID itself is never stored.
    uid_hash      TEXT NOT NULL,
    -- The last characters of the UID, so that people can tell their cards apart.
    uid_hint      TEXT NOT NULL,
    label         TEXT,
    created_at    TEXT NOT NULL,
    UNIQUE (makerspace_id, uid_hash)
);
CREATE INDEX member_cards_by_member ON member_cards (member_id);
