-- The waitlist's life gets two more ends: `booked` (the person booked an overlapping slot of
-- the machine) and `expired` (an offer not booked within the offer window). Entries are
-- kept for the history; only `waiting` and `offered` entries are live.
-- A person waits at most once for any instant of a machine: the join checks it inside a
-- `BEGIN IMMEDIATE` transaction (SQLite has one writer), using this index.
CREATE INDEX reservation_waitlist_by_person ON reservation_waitlist (equipment_id, user_id, status);
-- The sweep looks for offers older than the offer window every second.
CREATE INDEX reservation_waitlist_offers ON reservation_waitlist (status, offered_at);
