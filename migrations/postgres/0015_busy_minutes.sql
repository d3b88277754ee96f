-- Of a usage session's minutes, the time the machine was running (a job, or a plug's power
-- above its threshold). NULL for the sessions stored before it was counted: unknown, not zero.
ALTER TABLE usage_sessions ADD COLUMN busy_minutes DOUBLE PRECISION;
