-- The "created" line of a reservation's history is written by the insert itself (as on
-- SQLite, where this keeps a booking a single statement), so the line can never be missing.
CREATE FUNCTION reservation_created_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reservation_events (reservation_id, makerspace_id, action, actor, at)
    VALUES (NEW.id, NEW.makerspace_id, 'created', NEW.created_by, NEW.created_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER reservation_created_event AFTER INSERT ON reservations
    FOR EACH ROW EXECUTE FUNCTION reservation_created_event();
