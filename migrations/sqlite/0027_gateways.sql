-- Billing, payment gateways and the monthly run (issue 14): a space's Stripe and Razorpay accounts, the
-- checkouts makrcave opened with them, and every webhook event received (once per id).

-- A space's account with a gateway. `settings` is JSON; its secret fields (the secret key,
-- the webhook secret) are sealed with the data key, as machines' secrets are.
CREATE TABLE billing_gateways (
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    -- stripe | razorpay
    gateway       TEXT NOT NULL,
    settings      TEXT NOT NULL,
    updated_by    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (makerspace_id, gateway)
);

-- A checkout opened for an invoice: a Stripe Checkout Session or a Razorpay order. A webhook
-- names it by the gateway's id (`external_id`), which finds the invoice.
CREATE TABLE billing_checkouts (
    id            TEXT PRIMARY KEY,
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    invoice_id    TEXT NOT NULL REFERENCES billing_invoices(id) ON DELETE CASCADE,
    gateway       TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    amount_minor  INTEGER NOT NULL,
    currency      TEXT NOT NULL,
    url           TEXT,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    UNIQUE (gateway, external_id)
);
CREATE INDEX billing_checkouts_by_invoice ON billing_checkouts (invoice_id, created_at);

-- Every verified webhook event, once per gateway and event id: a redelivery finds its row and
-- changes nothing. `outcome`: paid | credited | duplicate_payment | ignored | unmatched | currency_mismatch.
CREATE TABLE billing_gateway_events (
    gateway       TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    event_type    TEXT NOT NULL,
    invoice_id    TEXT,
    payment_ref   TEXT,
    amount_minor  INTEGER,
    outcome       TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    PRIMARY KEY (gateway, event_id)
);

-- The monthly run (plan fees, then an invoice per member, finalized), when a space turns it on.
ALTER TABLE billing_settings ADD COLUMN monthly_run BOOLEAN NOT NULL DEFAULT FALSE;

-- Each month a space's run completed: the automatic run does a month once (every step is
-- idempotent anyway: a run repeated makes nothing twice).
CREATE TABLE billing_runs (
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    -- The first day of the month run, YYYY-MM-01.
    month         TEXT NOT NULL,
    plan_fees     INTEGER NOT NULL,
    invoices      INTEGER NOT NULL,
    ran_by        TEXT NOT NULL,
    ran_at        TEXT NOT NULL,
    PRIMARY KEY (makerspace_id, month)
);
