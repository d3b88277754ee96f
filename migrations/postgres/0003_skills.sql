-- Skills, prerequisites, certifications (user skills), certification requests and the audit
-- log. Which skills a machine needs lives in one place only: the equipment's
-- `skill_requirements` list (skill ids); there is no second equipment-skill table.

CREATE TABLE skills (
    id              TEXT PRIMARY KEY,
    makerspace_id   TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    category        TEXT NOT NULL,
    level           TEXT NOT NULL,
    description     TEXT,
    status          TEXT NOT NULL DEFAULT 'active',
    -- Days a certification lasts; NULL means it never expires.
    validity_days   BIGINT,
    -- Whether a certified use of a machine extends the certification.
    renew_on_use    BOOLEAN NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (makerspace_id, name)
);
CREATE INDEX skills_by_space ON skills (makerspace_id, category);

CREATE TABLE skill_prerequisites (
    skill_id        TEXT NOT NULL REFERENCES skills(id) ON DELETE CASCADE,
    prerequisite_id TEXT NOT NULL REFERENCES skills(id) ON DELETE CASCADE,
    PRIMARY KEY (skill_id, prerequisite_id)
);

CREATE TABLE user_skills (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    skill_id      TEXT NOT NULL REFERENCES skills(id) ON DELETE CASCADE,
    status        TEXT NOT NULL,
    certified_at  TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ,
    certified_by  TEXT,
    notes         TEXT,
    quiz_score    TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, skill_id)
);
CREATE INDEX idx_user_skills_skill_status ON user_skills (skill_id, status);

CREATE TABLE skill_requests (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    skill_id      TEXT NOT NULL REFERENCES skills(id) ON DELETE CASCADE,
    status        TEXT NOT NULL,
    reason        TEXT,
    notes         TEXT,
    reviewed_by   TEXT,
    reviewed_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
-- At most one pending request per person and skill.
CREATE UNIQUE INDEX skill_requests_one_pending ON skill_requests (user_id, skill_id) WHERE status = 'pending';
CREATE INDEX idx_skill_requests_status ON skill_requests (status, created_at);

CREATE TABLE skill_audit_logs (
    id            TEXT PRIMARY KEY,
    makerspace_id TEXT NOT NULL,
    action        TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    skill_id      TEXT REFERENCES skills(id) ON DELETE SET NULL,
    performed_by  TEXT,
    reason        TEXT,
    metadata      TEXT NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_skill_audit_logs_space ON skill_audit_logs (makerspace_id, created_at);
