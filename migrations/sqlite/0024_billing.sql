-- Billing, first slice (issue 14): a space's billing settings, machine prices, plan fees and
-- included minutes, charges made from use, the credit wallet's ledger, and the idempotency
-- keys of money writes. Money is integer minor units; rates are decimals kept as text.

-- One row per space that wrote its settings (a space without one has the defaults: no tax,
-- no prepaid mode, jobs charged as they ran). The currency stays on makerspaces.
CREATE TABLE billing_settings (
    makerspace_id         TEXT PRIMARY KEY REFERENCES makerspaces(id) ON DELETE CASCADE,
    -- JSON [{id, name, percent}], percent a decimal.
    tax_rates             TEXT NOT NULL DEFAULT '[]',
    prepaid               BOOLEAN NOT NULL DEFAULT FALSE,
    prepaid_minimum_minor INTEGER NOT NULL DEFAULT 0,
    job_charge_policy     TEXT NOT NULL DEFAULT 'actual',
    updated_at            TEXT NOT NULL,
    updated_by            TEXT NOT NULL
);

-- What an hour of each machine costs. Rates are decimal text (rust_decimal), never floats.
CREATE TABLE equipment_prices (
    equipment_id       TEXT PRIMARY KEY REFERENCES equipment(id) ON DELETE CASCADE,
    makerspace_id      TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    rate_per_hour      TEXT NOT NULL,
    billing_unit       TEXT NOT NULL DEFAULT 'minute',
    minimum_minor      INTEGER NOT NULL DEFAULT 0,
    busy_rate_per_hour TEXT,
    idle_rate_per_hour TEXT,
    flat_fee_minor     INTEGER NOT NULL DEFAULT 0,
    tax_rate_id        TEXT,
    updated_at         TEXT NOT NULL,
    updated_by         TEXT NOT NULL
);
-- The float hourly_rate becomes the decimal rate, keeping the stored value: SQLite writes a
-- REAL as its shortest 15-digit text (30.0 -> '30.0', 12.5 -> '12.5'), read back exactly.
INSERT INTO equipment_prices (equipment_id, makerspace_id, rate_per_hour, updated_at, updated_by)
SELECT id, makerspace_id, CAST(hourly_rate AS TEXT), updated_at, 'migration'
FROM equipment WHERE hourly_rate IS NOT NULL AND hourly_rate >= 0;

-- A plan's fee in minor units (from its price, by the currency's decimals) and its included
-- minutes per kind of machine, JSON [{equipment_type, minutes}].
ALTER TABLE membership_plans ADD COLUMN fee_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE membership_plans ADD COLUMN included_minutes TEXT NOT NULL DEFAULT '[]';
UPDATE membership_plans SET fee_minor = CAST(ROUND(price * (
    SELECT CASE
        WHEN m.currency IN ('BIF','CLP','DJF','GNF','ISK','JPY','KMF','KRW','PYG','RWF','UGX','UYI','VND','VUV','XAF','XOF','XPF') THEN 1
        WHEN m.currency IN ('BHD','IQD','JOD','KWD','LYD','OMR','TND') THEN 1000
        WHEN m.currency IN ('CLF','UYW') THEN 10000
        ELSE 100 END
    FROM makerspaces m WHERE m.id = membership_plans.makerspace_id)) AS INTEGER);

-- Charges: one per source (a session, a job, or an admin's manual line), append-only but for
-- their status (open -> invoiced, or void) and the invoice that takes them.
CREATE TABLE billing_charges (
    id                TEXT PRIMARY KEY,
    makerspace_id     TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    member_id         TEXT NOT NULL,
    -- session:{id}, job:{id}, manual:{id}: a charge is made once per source.
    source            TEXT NOT NULL,
    -- session | job | manual | discount
    kind              TEXT NOT NULL,
    description       TEXT NOT NULL,
    equipment_id      TEXT,
    equipment_type    TEXT,
    -- When the use happened (a session's end, a job's end; a manual line's creation): periods
    -- and filters go by it.
    usage_at          TEXT NOT NULL,
    -- Minutes of plan credits this charge used (counted against the plan's period).
    included_minutes  INTEGER NOT NULL DEFAULT 0,
    -- JSON: the figures and the rounding rule as data; rounding_rule: the same in words.
    detail            TEXT NOT NULL DEFAULT '{}',
    rounding_rule     TEXT NOT NULL DEFAULT '',
    currency          TEXT NOT NULL,
    net_minor         INTEGER NOT NULL,
    tax_rate_id       TEXT,
    tax_percent       TEXT,
    tax_minor         INTEGER NOT NULL,
    total_minor       INTEGER NOT NULL,
    status            TEXT NOT NULL DEFAULT 'open',
    invoice_id        TEXT,
    reason            TEXT,
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    UNIQUE (makerspace_id, source)
);
CREATE INDEX billing_charges_by_member ON billing_charges (makerspace_id, member_id, usage_at);
CREATE INDEX billing_charges_by_time ON billing_charges (makerspace_id, usage_at);

-- Ended sessions not charged yet: the billing sweep's work list, so it never scans history.
-- Sessions stored before billing existed are not charged.
ALTER TABLE usage_sessions ADD COLUMN charged BOOLEAN NOT NULL DEFAULT TRUE;
CREATE INDEX usage_sessions_to_charge ON usage_sessions (ended_at) WHERE charged = FALSE;

-- The credit wallet: append-only, signed amounts; a balance is the sum of a member's rows.
CREATE TABLE billing_wallet_entries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    makerspace_id   TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    member_id       TEXT NOT NULL,
    -- top_up | charge_payment | refund | adjustment
    kind            TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL,
    currency        TEXT NOT NULL,
    charge_id       TEXT,
    reason          TEXT,
    actor           TEXT NOT NULL,
    idempotency_key TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX billing_wallet_by_member ON billing_wallet_entries (makerspace_id, member_id, id);
-- A charge is paid from a wallet at most once.
CREATE UNIQUE INDEX billing_wallet_one_payment ON billing_wallet_entries (charge_id) WHERE kind = 'charge_payment';

-- One row per member whose wallet or charges were written: locked (FOR UPDATE on PostgreSQL)
-- by every write that reads the balance or the plan credits, so that two of them for one
-- member run one after the other. It holds no amount: the ledger is the only truth.
CREATE TABLE billing_member_locks (
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    member_id     TEXT NOT NULL,
    PRIMARY KEY (makerspace_id, member_id)
);

-- Idempotency keys of money writes: the first request's fingerprint and what it made
-- (wallet:{row id} or charge:{id}); the same key with another request is refused.
CREATE TABLE billing_idempotency_keys (
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    result        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (makerspace_id, key)
);
