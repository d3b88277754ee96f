-- Service orders (issue 12, part 5): the MakrX Store's fabrication orders, offered to one
-- provider makerspace at a time as `offered` jobs there, until one accepts (its jobs join its
-- queue) or none is left (`unroutable`). Every decision is a compare-and-set on `round`, so an
-- answer and a timeout (or two nodes) can never both act on one offer.
CREATE TABLE service_orders (
    -- The Store's service_order_id: sending the same order again finds this row.
    id               TEXT PRIMARY KEY,
    -- The service that sent it (the token's `sub`); it owns the order's jobs.
    caller_id        TEXT NOT NULL,
    -- The request as understood (normalised JSON): a resend must say the same.
    request          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('offered', 'accepted', 'unroutable')),
    -- The provider it is offered to or was accepted by (none once unroutable).
    makerspace_id    TEXT,
    -- Its jobs there (one per copy, one batch).
    batch_id         TEXT,
    job_ids          TEXT NOT NULL DEFAULT '[]',
    -- Providers that refused it or let an offer lapse: it is not offered to them again.
    tried            TEXT NOT NULL DEFAULT '[]',
    -- How many offers were made; the current offer's number.
    round            INTEGER NOT NULL DEFAULT 0,
    offered_at       TIMESTAMPTZ,
    offer_timeout_s  BIGINT,
    -- When the current offer counts as refused if the provider has not answered.
    offer_expires_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX service_orders_open_offers ON service_orders (status, offer_expires_at);
CREATE INDEX service_orders_by_batch ON service_orders (batch_id);
CREATE INDEX jobs_by_batch ON jobs (batch_id);

-- What happened to each order, appended to and never rewritten.
CREATE TABLE service_order_events (
    id               BIGSERIAL PRIMARY KEY,
    service_order_id TEXT NOT NULL REFERENCES service_orders(id) ON DELETE CASCADE,
    round            INTEGER NOT NULL,
    -- offered, accepted, refused, timed_out, unroutable.
    event            TEXT NOT NULL,
    makerspace_id    TEXT,
    -- The service, a person of the provider, or `timeout`.
    actor            TEXT NOT NULL,
    reason           TEXT,
    at               TIMESTAMPTZ NOT NULL
);
CREATE INDEX service_order_events_by_order ON service_order_events (service_order_id, id);
CREATE FUNCTION service_order_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'service_order_events is append-only';
END;
$$;
CREATE TRIGGER service_order_events_append_only BEFORE UPDATE ON service_order_events
    FOR EACH ROW EXECUTE FUNCTION service_order_events_append_only();
