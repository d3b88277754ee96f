-- Billing exports (issue 14): the accounting journal's settings, and indexes for reading a
-- space's documents and payments by date.

-- JSON {sales_journal, payments_journal, client_account, ..., columns}; NULL until a space's
-- admins write billing settings again: the defaults then (journals VT and BQ, client 411,
-- revenue 706, tax 4457 + the rate's id, cash 530, bank 512, wallet 4191, gateway 511).
ALTER TABLE billing_settings ADD COLUMN accounting TEXT;

-- A period's journal reads documents finalized, issued or voided in it, and payments made in it.
CREATE INDEX billing_invoices_by_finalized ON billing_invoices (makerspace_id, finalized_at);
CREATE INDEX billing_invoices_by_voided ON billing_invoices (makerspace_id, voided_at);
CREATE INDEX billing_credit_notes_by_time ON billing_credit_notes (makerspace_id, created_at);
CREATE INDEX billing_payments_by_time ON billing_payments (makerspace_id, created_at);
