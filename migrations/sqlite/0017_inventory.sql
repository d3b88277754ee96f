-- What a makerspace stocks, and its stock log. Quantities are integers in thousandths of the
-- item's unit (milligrams for an item counted in grams).
CREATE TABLE inventory_items (
    id               TEXT PRIMARY KEY,
    makerspace_id    TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    category         TEXT NOT NULL,
    unit             TEXT NOT NULL,
    -- The sum of the item's log, kept here as a cache updated in the same transaction.
    current_stock    INTEGER NOT NULL DEFAULT 0,
    min_stock_level  INTEGER NOT NULL DEFAULT 0,
    reorder_quantity INTEGER NOT NULL DEFAULT 0,
    allow_negative   BOOLEAN NOT NULL DEFAULT FALSE,
    location         TEXT,
    -- makrx_store or external, with the supplier's SKU, name and URL.
    supplier_kind    TEXT NOT NULL,
    supplier_sku     TEXT,
    supplier_name    TEXT,
    supplier_url     TEXT,
    -- In the makerspace's currency's minor units.
    unit_cost_minor  INTEGER,
    -- Filament only: material, colour (RRGGBB), diameter in micrometres, density in mg/cm3.
    material         TEXT,
    color_hex        TEXT,
    diameter_um      INTEGER,
    density_mg_cm3   INTEGER,
    attributes       TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    deleted_at       TEXT
);
CREATE INDEX inventory_items_by_space ON inventory_items (makerspace_id, deleted_at, name);
CREATE INDEX inventory_items_by_sku ON inventory_items (makerspace_id, supplier_sku);

-- Every change of stock, appended to and never rewritten.
CREATE TABLE inventory_usage (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id         TEXT NOT NULL REFERENCES inventory_items(id) ON DELETE CASCADE,
    makerspace_id   TEXT NOT NULL,
    delta           INTEGER NOT NULL,
    -- The level right after this row: what a retried request is answered with.
    level_after     INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    cause_kind      TEXT NOT NULL,
    cause_id        TEXT,
    actor           TEXT NOT NULL,
    note            TEXT,
    idempotency_key TEXT,
    at              TEXT NOT NULL
);
CREATE INDEX inventory_usage_by_item ON inventory_usage (item_id, id);
CREATE UNIQUE INDEX inventory_usage_by_key ON inventory_usage (item_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TRIGGER inventory_usage_append_only BEFORE UPDATE ON inventory_usage
BEGIN
    SELECT RAISE(ABORT, 'inventory_usage is append-only');
END;
