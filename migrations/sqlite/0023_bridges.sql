-- makrcave-bridge: the offline allowlist names cards by their HMAC under the makerspace's
-- allowlist card key. The server learns it whenever it sees the UID (a card registered, a tap
-- at a kiosk or bridge); a card not seen since this column came is not in offline lists yet.
ALTER TABLE member_cards ADD COLUMN offline_hash TEXT;

-- A tap a bridge decided while makrcave was away, reported later: recorded once per id.
ALTER TABLE kiosk_attempts ADD COLUMN offline_tap_id TEXT;
CREATE UNIQUE INDEX kiosk_attempts_offline_tap ON kiosk_attempts (offline_tap_id) WHERE offline_tap_id IS NOT NULL;
