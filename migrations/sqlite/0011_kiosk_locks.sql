-- Kiosks resist guessing (issue 9): a kiosk may let any card end a session ("any card
-- locks"; by default only the session's own card or an admin's), and the audit log keeps who
-- presented the card apart from whose session it was.

ALTER TABLE kiosks ADD COLUMN any_card_locks INTEGER NOT NULL DEFAULT 0;

-- The member whose card was presented (at a lock: perhaps not the session's member, who
-- stays in member_id / user_id).
ALTER TABLE kiosk_attempts ADD COLUMN presenter_member_id TEXT;
ALTER TABLE kiosk_attempts ADD COLUMN presenter_user_id TEXT;
