-- 003_alerts.sql - the parameters of the alert views (issue 13).
--
-- The alert views of sql/objects/85_alerts.sql read their thresholds from
-- this table, one row per parameter, so that an administrator tunes them
-- with an UPDATE instead of editing a view (migrate would put the view back).
-- Each view falls back to the same built-in default when a row is missing,
-- so a deleted row means "the default", never an error or a silent alert.
-- A numeric value for every parameter: days, counts, points, factors.
-- The rows below are the defaults; migrations never touch a value once
-- inserted (an administrator's change survives upgrades).

CREATE TABLE dmarc.alert_settings (
	name         text PRIMARY KEY,
	value        numeric NOT NULL,
	description  text NOT NULL
);
COMMENT ON TABLE dmarc.alert_settings IS
	'Parameters of the alert views (dmarc.alert_*): one row per parameter. Change a value with UPDATE; a missing row means '
	'the built-in default (the value this table was created with).';
COMMENT ON COLUMN dmarc.alert_settings.name IS 'The parameter, e.g. new_unsigned_days; the alert views name it.';
COMMENT ON COLUMN dmarc.alert_settings.value IS 'Its value (days, messages, percentage points, a factor: see description).';
COMMENT ON COLUMN dmarc.alert_settings.description IS 'What it means and which view reads it.';

INSERT INTO dmarc.alert_settings (name, value, description) VALUES
	('new_unsigned_days', 7,
	 'alert_new_unsigned_sources: a server counts as new when its first server-generated mail without aligned DKIM for the domain is in the last N UTC days (today included).'),
	('new_unsigned_min_messages', 1,
	 'alert_new_unsigned_sources: at least this many such messages in those days.'),
	('pass_rate_recent_days', 1,
	 'alert_pass_rate_drop: the recent period is today and the N UTC days before (reports for a day arrive the day after).'),
	('pass_rate_baseline_days', 28,
	 'alert_pass_rate_drop: the baseline is the N UTC days before the recent period.'),
	('pass_rate_drop_points', 10,
	 'alert_pass_rate_drop: alert when the DMARC pass rate fell by more than this many percentage points.'),
	('pass_rate_min_messages', 100,
	 'alert_pass_rate_drop: both periods need at least this many messages.'),
	('new_failing_days', 7,
	 'alert_new_failing_senders: a source is new when no report for the domain listed it before the last N UTC days.'),
	('new_failing_min_messages', 10,
	 'alert_new_failing_senders: at least this many messages failing DMARC in those days.'),
	('silent_reporter_gap_days', 3,
	 'alert_silent_reporters: no report data for today and the N UTC days before.'),
	('silent_reporter_period_days', 14,
	 'alert_silent_reporters: the period before the gap, in UTC days, in which the reporter was active.'),
	('silent_reporter_active_days', 10,
	 'alert_silent_reporters: the reporter sent data for at least this many days of that period.'),
	('collector_interval_seconds', 300,
	 'alert_collector_stale: the service''s [service] interval in seconds (the database does not know the configuration: set it to the same value).'),
	('collector_stale_intervals', 3,
	 'alert_collector_stale: a mailbox is stale when its last successful poll is older than this many intervals.'),
	('rejected_rise_factor', 3,
	 'alert_collector_stale: rejected inputs of the last 24 hours above this factor times the daily average of the 7 days before.'),
	('rejected_rise_min', 5,
	 'alert_collector_stale: and at least this many rejected inputs in the last 24 hours.');
