-- A new booking in one round trip (store/reservations.rs, create_reservation).
--
-- It takes the machine's booking lock (the advisory lock status changes take too), then
-- inserts the reservation and the "created" line of its history, unless a holding booking
-- overlaps the guarded interval (the booking widened by the makerspace's minimum gap); then
-- nothing is written and the overlapping bookings are returned. In READ COMMITTED each
-- statement of a VOLATILE function starts with a fresh snapshot, so the check, which runs
-- once the lock is held, sees every booking committed before. The lock is held until the
-- caller's transaction (its single statement) ends. The exclusion constraint still backs it.
--
-- Returns nothing when the reservation was written, else the bookings in its way.
CREATE FUNCTION book_reservation(
    p_id TEXT, p_makerspace_id TEXT, p_equipment_id TEXT, p_user_id TEXT, p_kind TEXT, p_status TEXT,
    p_start_at TIMESTAMPTZ, p_end_at TIMESTAMPTZ, p_purpose TEXT, p_created_by TEXT, p_decided_by TEXT,
    p_reason TEXT, p_checked_in_at TIMESTAMPTZ, p_created_at TIMESTAMPTZ, p_updated_at TIMESTAMPTZ,
    p_guard_from TIMESTAMPTZ, p_guard_to TIMESTAMPTZ
) RETURNS SETOF reservations LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('reservation:' || p_equipment_id, 0));
    -- A range overlap, so that the exclusion constraint's GiST index (by machine and time)
    -- answers it.
    RETURN QUERY SELECT * FROM reservations WHERE equipment_id = p_equipment_id
        AND status IN ('confirmed', 'checked_in')
        AND tstzrange(start_at, end_at, '[)') && tstzrange(p_guard_from, p_guard_to, '[)')
        AND id <> p_id ORDER BY start_at, id;
    IF FOUND THEN
        RETURN;
    END IF;
    INSERT INTO reservations (id, makerspace_id, equipment_id, user_id, kind, status, start_at, end_at,
        purpose, created_by, decided_by, reason, checked_in_at, created_at, updated_at)
    VALUES (p_id, p_makerspace_id, p_equipment_id, p_user_id, p_kind, p_status, p_start_at, p_end_at,
        p_purpose, p_created_by, p_decided_by, p_reason, p_checked_in_at, p_created_at, p_updated_at);
    INSERT INTO reservation_events (reservation_id, makerspace_id, action, actor, at)
    VALUES (p_id, p_makerspace_id, 'created', p_created_by, p_created_at);
END;
$$;
