-- Many new bookings in one call (store/booking_writer.rs): under load the booking writer
-- hands PostgreSQL a batch at a time, so that a booking costs no statement of its own.
--
-- `p_bookings` is a JSON array of reservations, each with the columns of `reservations` plus
-- `guard_from` and `guard_to` (the booking widened by the makerspace's minimum gap). Each is
-- booked as by `book_reservation` (migration 0008): the machine's lock, the check, the insert
-- and its history line; later bookings of the batch see the earlier ones, first come first
-- served. The check is a range overlap, so that the exclusion constraint's GiST index (by
-- machine and time) answers it rather than a read of the machine's history. Locks are taken
-- in machine order, so that two batches never wait for each other in a circle; they are held
-- until the caller's statement ends.
--
-- Returns one row per booking: its id and, when it was not written, the bookings in its way
-- (a JSON array of reservations), else NULL.
CREATE FUNCTION book_reservations(p_bookings JSONB) RETURNS TABLE (for_id TEXT, conflicts JSONB)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    b RECORD;
    in_the_way JSONB;
BEGIN
    FOR b IN
        SELECT x.* FROM jsonb_array_elements(p_bookings) WITH ORDINALITY AS e(booking, n),
            jsonb_to_record(e.booking) AS x(
                id TEXT, makerspace_id TEXT, equipment_id TEXT, user_id TEXT, kind TEXT, status TEXT,
                start_at TIMESTAMPTZ, end_at TIMESTAMPTZ, purpose TEXT, created_by TEXT, decided_by TEXT,
                reason TEXT, checked_in_at TIMESTAMPTZ, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,
                guard_from TIMESTAMPTZ, guard_to TIMESTAMPTZ)
        ORDER BY x.equipment_id, e.n
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('reservation:' || b.equipment_id, 0));
        SELECT jsonb_agg(to_jsonb(r) ORDER BY r.start_at, r.id) INTO in_the_way FROM reservations r
        WHERE r.equipment_id = b.equipment_id AND r.status IN ('confirmed', 'checked_in')
            AND tstzrange(r.start_at, r.end_at, '[)') && tstzrange(b.guard_from, b.guard_to, '[)')
            AND r.id <> b.id;
        IF in_the_way IS NULL THEN
            INSERT INTO reservations (id, makerspace_id, equipment_id, user_id, kind, status, start_at, end_at,
                purpose, created_by, decided_by, reason, checked_in_at, created_at, updated_at)
            VALUES (b.id, b.makerspace_id, b.equipment_id, b.user_id, b.kind, b.status, b.start_at, b.end_at,
                b.purpose, b.created_by, b.decided_by, b.reason, b.checked_in_at, b.created_at, b.updated_at);
            INSERT INTO reservation_events (reservation_id, makerspace_id, action, actor, at)
            VALUES (b.id, b.makerspace_id, 'created', b.created_by, b.created_at);
        END IF;
        for_id := b.id;
        conflicts := in_the_way;
        RETURN NEXT;
    END LOOP;
END;
$$;
