-- Appending an event advances the log clock in the same statement, so an
-- append is one round trip. Writers take turns (SQLite has one writer at
-- a time), so sequence order is commit order.
CREATE TRIGGER events_advance_clock AFTER INSERT ON events
BEGIN
    UPDATE log_clock SET seq = NEW.seq WHERE id = 1;
END;
