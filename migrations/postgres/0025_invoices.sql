-- Billing, second slice (issue 14): invoices with gapless numbers, their frozen lines,
-- payments, credit notes, and the integrity chain over finalized documents.

-- The number patterns of a space's two series (validated by the API: {YYYY} and {NNNNN}).
ALTER TABLE billing_settings ADD COLUMN invoice_number_pattern TEXT NOT NULL DEFAULT 'INV-{YYYY}-{NNNNN}';
ALTER TABLE billing_settings ADD COLUMN credit_note_number_pattern TEXT NOT NULL DEFAULT 'CN-{YYYY}-{NNNNN}';

-- An invoice: a draft collects charges (billing_charges.invoice_id); finalizing gives it its
-- number, freezes its lines into billing_invoice_lines and its totals here, and links it
-- into the space's chain. Totals of a draft are 0 here (they are read from its charges).
CREATE TABLE billing_invoices (
    id             TEXT PRIMARY KEY,
    makerspace_id  TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    member_id      TEXT NOT NULL,
    period_from    DATE NOT NULL,
    period_to      DATE NOT NULL,
    currency       TEXT NOT NULL,
    -- draft | finalized | void
    status         TEXT NOT NULL DEFAULT 'draft',
    number         TEXT,
    finalized_at   TIMESTAMPTZ,
    net_minor      BIGINT NOT NULL DEFAULT 0,
    tax_minor      BIGINT NOT NULL DEFAULT 0,
    total_minor    BIGINT NOT NULL DEFAULT 0,
    -- The integrity chain: the place in the space's finalization order and the hashes.
    chain_seq      BIGINT,
    content_sha256 TEXT,
    chain_sha256   TEXT,
    voided_at      TIMESTAMPTZ,
    void_reason    TEXT,
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (makerspace_id, number)
);
CREATE INDEX billing_invoices_by_member ON billing_invoices (makerspace_id, member_id, created_at);

-- A finalized invoice's lines, copied from its charges: never read from charges afterwards.
CREATE TABLE billing_invoice_lines (
    invoice_id  TEXT NOT NULL REFERENCES billing_invoices(id) ON DELETE CASCADE,
    charge_id   TEXT NOT NULL,
    position    BIGINT NOT NULL,
    description TEXT NOT NULL,
    usage_at    TIMESTAMPTZ NOT NULL,
    net_minor   BIGINT NOT NULL,
    tax_rate_id TEXT,
    tax_percent TEXT,
    tax_minor   BIGINT NOT NULL,
    total_minor BIGINT NOT NULL,
    PRIMARY KEY (invoice_id, charge_id)
);
-- A charge is on at most one invoice.
CREATE UNIQUE INDEX billing_invoice_lines_one_invoice ON billing_invoice_lines (charge_id);

-- The last number given per space, series (invoice | credit_note) and year: taken and
-- incremented in the finalizing transaction, so numbers have no gaps.
CREATE TABLE billing_number_counters (
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    series        TEXT NOT NULL,
    year          BIGINT NOT NULL,
    last_number   BIGINT NOT NULL,
    PRIMARY KEY (makerspace_id, series, year)
);

-- The head of a space's integrity chain, locked by every finalization and credit note so
-- that documents are numbered and chained one at a time.
CREATE TABLE billing_chain_heads (
    makerspace_id TEXT PRIMARY KEY REFERENCES makerspaces(id) ON DELETE CASCADE,
    last_seq      BIGINT NOT NULL DEFAULT 0,
    last_sha256   TEXT NOT NULL DEFAULT ''
);

-- Money received for an invoice (kind payment, positive) or given back (kind refund,
-- negative). Append-only; an invoice's paid amount is the sum.
CREATE TABLE billing_payments (
    id              BIGSERIAL PRIMARY KEY,
    makerspace_id   TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    invoice_id      TEXT NOT NULL REFERENCES billing_invoices(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    -- cash | bank_transfer | wallet
    method          TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    reference       TEXT,
    wallet_entry_id BIGINT,
    credit_note_id  TEXT,
    actor           TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX billing_payments_by_invoice ON billing_payments (invoice_id, id);

-- A credit note: the correction of a finalized invoice, numbered in its own series and
-- chained as invoices are. Amounts are negative.
CREATE TABLE billing_credit_notes (
    id             TEXT PRIMARY KEY,
    makerspace_id  TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    invoice_id     TEXT NOT NULL REFERENCES billing_invoices(id) ON DELETE CASCADE,
    member_id      TEXT NOT NULL,
    number         TEXT NOT NULL,
    currency       TEXT NOT NULL,
    -- wallet | original_method
    refund_to      TEXT NOT NULL,
    reason         TEXT NOT NULL,
    net_minor      BIGINT NOT NULL,
    tax_minor      BIGINT NOT NULL,
    total_minor    BIGINT NOT NULL,
    -- What was given back (0 when the invoice was not paid beyond what is still due).
    refunded_minor BIGINT NOT NULL,
    chain_seq      BIGINT NOT NULL,
    content_sha256 TEXT NOT NULL,
    chain_sha256   TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (makerspace_id, number)
);
CREATE INDEX billing_credit_notes_by_invoice ON billing_credit_notes (invoice_id);

CREATE TABLE billing_credit_note_lines (
    credit_note_id TEXT NOT NULL REFERENCES billing_credit_notes(id) ON DELETE CASCADE,
    charge_id      TEXT NOT NULL,
    position       BIGINT NOT NULL,
    description    TEXT NOT NULL,
    net_minor      BIGINT NOT NULL,
    tax_rate_id    TEXT,
    tax_percent    TEXT,
    tax_minor      BIGINT NOT NULL,
    total_minor    BIGINT NOT NULL,
    PRIMARY KEY (credit_note_id, charge_id)
);
-- An invoiced line is credited at most once (whole): never more than was invoiced.
CREATE UNIQUE INDEX billing_credit_note_lines_once ON billing_credit_note_lines (charge_id);
