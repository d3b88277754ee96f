-- Overlap checks and listings ask for bookings with end_at > from AND start_at < to. Indexed by
-- start_at, that range reaches back over a machine's whole history (every past booking starts
-- before `to`); indexed by end_at it covers only bookings not yet over, however long the
-- history grows. The machine index also carries start_at and status, so the no-overlap check
-- of every booking is answered from the index alone.
DROP INDEX reservations_by_equipment;
DROP INDEX reservations_by_space;
CREATE INDEX reservations_by_equipment_end ON reservations (equipment_id, end_at, start_at, status);
CREATE INDEX reservations_by_space_end ON reservations (makerspace_id, end_at, start_at);
