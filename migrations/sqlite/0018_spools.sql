-- Filament spools: sub-accounts of a filament item. A spool's remaining grams are the sum of
-- the item's log rows that carry its id; the item's level stays the sum of all its rows.
CREATE TABLE spools (
    id            TEXT PRIMARY KEY,
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    item_id       TEXT NOT NULL REFERENCES inventory_items(id) ON DELETE CASCADE,
    lot           TEXT,
    -- Thousandths of a gram: the filament on the spool when it came in, and the empty spool.
    initial_net   INTEGER NOT NULL,
    tare          INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    retired_at    TEXT
);
CREATE INDEX spools_by_item ON spools (item_id, created_at);

-- Where a spool is loaded. The spool is the key (a spool is in one place), and a machine's
-- slot holds one spool; unloading deletes the row.
CREATE TABLE spool_loads (
    spool_id      TEXT PRIMARY KEY REFERENCES spools(id) ON DELETE CASCADE,
    makerspace_id TEXT NOT NULL,
    equipment_id  TEXT NOT NULL REFERENCES equipment(id) ON DELETE CASCADE,
    -- `0-1` (AMS unit 0, tray 1), `external`, `main`.
    slot          TEXT NOT NULL,
    loaded_by     TEXT NOT NULL,
    loaded_at     TEXT NOT NULL
);
CREATE UNIQUE INDEX spool_loads_by_slot ON spool_loads (equipment_id, slot);

-- The spool a row of the log was drawn from or counted on (NULL: the item as a whole).
ALTER TABLE inventory_usage ADD COLUMN spool_id TEXT REFERENCES spools(id);
CREATE INDEX inventory_usage_by_spool ON inventory_usage (spool_id, id) WHERE spool_id IS NOT NULL;
-- A job's charge found again by its key whichever spool (and item) it was drawn from.
CREATE INDEX inventory_usage_by_space_key ON inventory_usage (makerspace_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
