-- The "created" line of a reservation's history is written by the insert itself, so that a
-- booking is a single statement on SQLite's one write connection (store/reservations.rs),
-- and the line can never be missing.
CREATE TRIGGER reservation_created_event AFTER INSERT ON reservations
BEGIN
    INSERT INTO reservation_events (reservation_id, makerspace_id, action, actor, at)
    VALUES (NEW.id, NEW.makerspace_id, 'created', NEW.created_by, NEW.created_at);
END;
