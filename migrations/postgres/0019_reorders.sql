-- Low-stock alerts and purchase orders (issue 11, part 4). Quantities are thousandths of the
-- item's unit, as in inventory_usage; money is in minor units of the order's currency.

-- One alert per downward crossing of an item's minimum, raised in the transaction of the
-- stock row that crossed it. `open` until a purchase order takes it (`ordered`), `closed`
-- when stock came back above the minimum or its order was received in full.
CREATE TABLE stock_alerts (
    id                TEXT PRIMARY KEY,
    makerspace_id     TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    item_id           TEXT NOT NULL REFERENCES inventory_items(id) ON DELETE CASCADE,
    -- The log row that crossed the minimum, and the level and minimum then.
    usage_id          BIGINT NOT NULL,
    level_at_alert    BIGINT NOT NULL,
    min_stock_level   BIGINT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('open', 'ordered', 'closed')),
    purchase_order_id TEXT,
    raised_at         TIMESTAMPTZ NOT NULL,
    closed_at         TIMESTAMPTZ
);
-- At most one live alert per item, whatever the concurrency: a crossing while one is live
-- raises nothing more.
CREATE UNIQUE INDEX stock_alerts_one_live_per_item ON stock_alerts (item_id) WHERE status <> 'closed';
CREATE INDEX stock_alerts_by_space ON stock_alerts (makerspace_id, status, raised_at);
CREATE INDEX stock_alerts_by_order ON stock_alerts (purchase_order_id) WHERE purchase_order_id IS NOT NULL;

-- An order to one supplier: draft -> ordered -> partially_received -> received, or cancelled
-- from draft or ordered. What was received is the stock log's (rows with cause
-- purchase_order and this order's id), never a number kept here.
CREATE TABLE purchase_orders (
    id              TEXT PRIMARY KEY,
    makerspace_id   TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    status          TEXT NOT NULL
        CHECK (status IN ('draft', 'ordered', 'partially_received', 'received', 'cancelled')),
    -- makrx_store or external (then with the supplier's name).
    supplier_kind   TEXT NOT NULL,
    supplier_name   TEXT,
    -- ISO 4217: the makerspace's when the order was made.
    currency        TEXT NOT NULL,
    note            TEXT,
    created_by      TEXT NOT NULL,
    ordered_by      TEXT,
    -- A retried create with the same key answers with this order.
    idempotency_key TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    ordered_at      TIMESTAMPTZ,
    received_at     TIMESTAMPTZ,
    cancelled_at    TIMESTAMPTZ,
    -- The quick-reorder payload sent to the MakrX Store (when one is configured): when it
    -- was taken, or why the last try failed.
    store_sent_at   TIMESTAMPTZ,
    store_error     TEXT,
    -- Receipts of one order run one at a time, across nodes: a receipt holds the order until
    -- this moment (a crashed one frees it when it passes).
    receiving_until TIMESTAMPTZ
);
CREATE INDEX purchase_orders_by_space ON purchase_orders (makerspace_id, status, created_at);
CREATE UNIQUE INDEX purchase_orders_by_key ON purchase_orders (makerspace_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- What an order asks for: one line per item, frozen when the order is made.
CREATE TABLE purchase_order_lines (
    id                TEXT PRIMARY KEY,
    purchase_order_id TEXT NOT NULL REFERENCES purchase_orders(id) ON DELETE CASCADE,
    position          BIGINT NOT NULL,
    item_id           TEXT NOT NULL REFERENCES inventory_items(id) ON DELETE CASCADE,
    sku               TEXT,
    name              TEXT NOT NULL,
    unit              TEXT NOT NULL,
    quantity_ordered  BIGINT NOT NULL CHECK (quantity_ordered > 0),
    unit_cost_minor   BIGINT
);
CREATE UNIQUE INDEX purchase_order_lines_one_per_item ON purchase_order_lines (purchase_order_id, item_id);

-- Every change of an order's status, appended to and never rewritten.
CREATE TABLE purchase_order_events (
    id                BIGSERIAL PRIMARY KEY,
    purchase_order_id TEXT NOT NULL REFERENCES purchase_orders(id) ON DELETE CASCADE,
    status            TEXT NOT NULL,
    actor             TEXT NOT NULL,
    detail            TEXT,
    at                TIMESTAMPTZ NOT NULL
);
CREATE INDEX purchase_order_events_by_order ON purchase_order_events (purchase_order_id, id);
CREATE FUNCTION purchase_order_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'purchase_order_events is append-only';
END;
$$;
CREATE TRIGGER purchase_order_events_append_only BEFORE UPDATE ON purchase_order_events
    FOR EACH ROW EXECUTE FUNCTION purchase_order_events_append_only();
-- A stock log row is found by its order when the order's receipts are summed.
CREATE INDEX inventory_usage_by_cause ON inventory_usage (cause_kind, cause_id) WHERE cause_id IS NOT NULL;
