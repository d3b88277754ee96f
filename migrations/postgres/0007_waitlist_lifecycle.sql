-- The waitlist's life gets two more ends: `booked` (the person booked an overlapping slot of
-- the machine) and `expired` (an offer not booked within the offer window). Entries are
-- kept for the history; only `waiting` and `offered` entries are live.

-- A person waits at most once for any instant of a machine. Joins check it under an
-- advisory lock; the exclusion constraint below backs the check for every node that shares
-- this database (SQLSTATE 23P01). Duplicates queued before the check existed are cancelled
-- first, the oldest entry of each person kept.
UPDATE reservation_waitlist AS w SET status = 'cancelled'
WHERE w.status IN ('waiting', 'offered') AND EXISTS (
    SELECT 1 FROM reservation_waitlist AS e
    WHERE e.equipment_id = w.equipment_id AND e.user_id = w.user_id
      AND e.status IN ('waiting', 'offered')
      AND e.start_at < w.end_at AND e.end_at > w.start_at
      AND (e.created_at, e.id) < (w.created_at, w.id)
);

ALTER TABLE reservation_waitlist ADD CONSTRAINT reservation_waitlist_no_duplicate EXCLUDE USING gist (
    equipment_id WITH =,
    user_id WITH =,
    tstzrange(start_at, end_at, '[)') WITH &&
) WHERE (status IN ('waiting', 'offered'));

-- The sweep looks for offers older than the offer window every second.
CREATE INDEX reservation_waitlist_offers ON reservation_waitlist (status, offered_at);
