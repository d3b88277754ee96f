-- Each makerspace's price table (issue 12, "Quotes"): one row, the table as JSON (see
-- src/domain/pricing/table.rs for its shape), replaced whole by its admins. A space without
-- a row quotes from the default table.
CREATE TABLE price_tables (
    makerspace_id TEXT PRIMARY KEY REFERENCES makerspaces(id) ON DELETE CASCADE,
    price_table   TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    -- The user id of the admin who wrote it.
    updated_by    TEXT NOT NULL
);
