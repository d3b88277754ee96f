-- The credentials machines connect to the MQTT broker with. The password is shown once, when
-- it is issued; only its hash is kept, in Mosquitto's own format ($7$, PBKDF2-SHA512), so the
-- same row serves the embedded broker and an external Mosquitto's password_file.
CREATE TABLE mqtt_credentials (
    id            TEXT PRIMARY KEY,
    makerspace_id TEXT NOT NULL REFERENCES makerspaces(id) ON DELETE CASCADE,
    equipment_id  TEXT NOT NULL REFERENCES equipment(id) ON DELETE CASCADE,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);
-- One live credential per machine (issuing a new one revokes the old); revoked rows stay as
-- the record of who could connect when.
CREATE UNIQUE INDEX mqtt_credentials_live_by_equipment ON mqtt_credentials (equipment_id) WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX mqtt_credentials_live_by_username ON mqtt_credentials (username) WHERE revoked_at IS NULL;
