-- What a makerspace stocks, and its stock log. Quantities are integers in thousandths of the
-- item's unit (milligrams for an item counted in grams).
CREATE TABLE inventory_items (
    id               TEXT PRIMARY KEY,
    makerspace_id    TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    category         TEXT NOT NULL,
    unit             TEXT NOT NULL,
    -- The sum of the item's log, kept here as a cache updated in the same transaction.
    current_stock    BIGINT NOT NULL DEFAULT 0,
    min_stock_level  BIGINT NOT NULL DEFAULT 0,
    reorder_quantity BIGINT NOT NULL DEFAULT 0,
    allow_negative   BOOLEAN NOT NULL DEFAULT FALSE,
    location         TEXT,
    -- makrx_store or external, with the supplier's SKU, name and URL.
    supplier_kind    TEXT NOT NULL,
    supplier_sku     TEXT,
    supplier_name    TEXT,
    supplier_url     TEXT,
    -- In the makerspace's currency's minor units.
    unit_cost_minor  BIGINT,
    -- Filament only: material, colour (RRGGBB), diameter in micrometres, density in mg/cm3.
    material         TEXT,
    color_hex        TEXT,
    diameter_um      BIGINT,
    density_mg_cm3   BIGINT,
    attributes       TEXT NOT NULL DEFAULT '{}',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    deleted_at       TIMESTAMPTZ
);
CREATE INDEX inventory_items_by_space ON inventory_items (makerspace_id, deleted_at, name);
CREATE INDEX inventory_items_by_sku ON inventory_items (makerspace_id, supplier_sku);

-- Every change of stock, appended to and never rewritten.
CREATE TABLE inventory_usage (
    id              BIGSERIAL PRIMARY KEY,
    item_id         TEXT NOT NULL REFERENCES inventory_items(id) ON DELETE CASCADE,
    makerspace_id   TEXT NOT NULL,
    delta           BIGINT NOT NULL,
    -- The level right after this row: what a retried request is answered with.
    level_after     BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    cause_kind      TEXT NOT NULL,
    cause_id        TEXT,
    actor           TEXT NOT NULL,
    note            TEXT,
    idempotency_key TEXT,
    at              TIMESTAMPTZ NOT NULL
);
CREATE INDEX inventory_usage_by_item ON inventory_usage (item_id, id);
CREATE UNIQUE INDEX inventory_usage_by_key ON inventory_usage (item_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE FUNCTION inventory_usage_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'inventory_usage is append-only';
END;
$$;
CREATE TRIGGER inventory_usage_append_only BEFORE UPDATE ON inventory_usage
    FOR EACH ROW EXECUTE FUNCTION inventory_usage_append_only();
