-- Behaviour detection: threat-intelligence feeds, detection rules, alerts
-- and the mitigations they caused, incidents, and webhooks with their
-- delivery outbox. Baselines are learned in memory by each node and are
-- not stored (docs/decisions/0016-behaviour-detection.md).

-- A feed is replaced whole by each import: its indicators are deleted and
-- written again in one transaction, and version counts the imports, so
-- nodes notice a change and reload.
CREATE TABLE intel_feeds (
	name        {{key}} PRIMARY KEY,
	format      TEXT NOT NULL,
	description TEXT NOT NULL,
	indicators  {{int64}} NOT NULL,
	version     {{int64}} NOT NULL,
	imported_at {{time}} NOT NULL,
	imported_by TEXT NOT NULL
);
CREATE TABLE intel_indicators (
	feed  {{key}} NOT NULL,
	type  {{key}} NOT NULL,   -- ip | cidr | domain
	value {{key}} NOT NULL,
	name  TEXT NOT NULL,
	PRIMARY KEY (feed, type, value)
) {{without_rowid}};

-- Rules are JSON documents (detect.Rule); the server validates them.
CREATE TABLE detect_rules (
	id         {{key}} PRIMARY KEY,
	doc        TEXT NOT NULL,
	updated_at {{time}} NOT NULL,
	updated_by TEXT NOT NULL
);
-- Small settings of the detector, such as whether the default rules were
-- installed once (so deleting them all is respected).
CREATE TABLE detect_settings (
	name  {{key}} PRIMARY KEY,
	value TEXT NOT NULL
);

-- Alerts. dedup_key (rule, device and, for intelligence matches, the
-- indicator) is unique among alerts not resolved, so a rule that keeps
-- firing updates one alert (count, last_seen, evidence) instead of adding
-- alerts. Evidence and the suggested actions are JSON.
CREATE TABLE alerts (
	id          {{key}} PRIMARY KEY,
	dedup_key   {{key}} NOT NULL,
	rule_id     {{key}} NOT NULL,
	device_id   {{key}} NOT NULL,
	severity    {{key}} NOT NULL,
	state       {{key}} NOT NULL,   -- open | acknowledged | resolved
	summary     TEXT NOT NULL,
	evidence    TEXT NOT NULL,
	actions     TEXT NOT NULL,
	hits        {{int64}} NOT NULL,
	node        TEXT NOT NULL,
	first_seen  {{time}} NOT NULL,
	last_seen   {{time}} NOT NULL,
	acked_at    {{time}},
	acked_by    TEXT NOT NULL,
	resolved_at {{time}},
	resolved_by TEXT NOT NULL,
	resolution  TEXT NOT NULL
);
CREATE UNIQUE INDEX alerts_live_key ON alerts (dedup_key) WHERE state <> 'resolved';
CREATE INDEX alerts_state ON alerts (state, id);
CREATE INDEX alerts_device ON alerts (device_id, id);

-- Mitigations applied because of an alert, automatically or by an
-- operator; reverted_at is set when one was undone (un-quarantine).
CREATE TABLE alert_actions (
	id          {{key}} PRIMARY KEY,
	alert_id    {{key}} NOT NULL,
	device_id   {{key}} NOT NULL,
	action      TEXT NOT NULL,
	status      {{key}} NOT NULL,   -- applied | failed | reverted
	detail      TEXT NOT NULL,
	auto        {{int64}} NOT NULL,
	actor       TEXT NOT NULL,
	at          {{time}} NOT NULL,
	reverted_at {{time}},
	reverted_by TEXT NOT NULL
);
CREATE INDEX alert_actions_alert ON alert_actions (alert_id, id);

-- Incidents group alerts (and through them their actions) with notes.
CREATE TABLE incidents (
	id         {{key}} PRIMARY KEY,
	title      TEXT NOT NULL,
	state      {{key}} NOT NULL,   -- open | closed
	created_at {{time}} NOT NULL,
	created_by TEXT NOT NULL,
	updated_at {{time}} NOT NULL,
	closed_at  {{time}}
);
CREATE TABLE incident_alerts (
	incident_id {{key}} NOT NULL,
	alert_id    {{key}} NOT NULL,
	added_at    {{time}} NOT NULL,
	added_by    TEXT NOT NULL,
	PRIMARY KEY (incident_id, alert_id)
) {{without_rowid}};
CREATE TABLE incident_notes (
	id          {{key}} PRIMARY KEY,
	incident_id {{key}} NOT NULL,
	author      TEXT NOT NULL,
	body        TEXT NOT NULL,
	at          {{time}} NOT NULL
);
CREATE INDEX incident_notes_incident ON incident_notes (incident_id, id);

-- Webhooks receive alerts as signed JSON. The secret is the HMAC key the
-- payloads are signed with, so it is kept as given; the API never shows it
-- again after creation.
CREATE TABLE webhooks (
	id           {{key}} PRIMARY KEY,
	url          TEXT NOT NULL,
	secret       TEXT NOT NULL,
	min_severity {{key}} NOT NULL,
	created_at   {{time}} NOT NULL,
	created_by   TEXT NOT NULL
);
-- The delivery outbox: one row per alert event and webhook, written in the
-- same transaction as the alert, retried with backoff until delivered or
-- out of attempts, claimed by one node at a time through claimed_until.
CREATE TABLE webhook_deliveries (
	id            {{key}} PRIMARY KEY,
	webhook_id    {{key}} NOT NULL,
	alert_id      {{key}} NOT NULL,
	event         TEXT NOT NULL,
	payload       TEXT NOT NULL,
	state         {{key}} NOT NULL,   -- pending | delivered | failed
	attempts      {{int64}} NOT NULL,
	next_at       {{time}} NOT NULL,
	claimed_until {{time}} NOT NULL,
	last_error    TEXT NOT NULL,
	created_at    {{time}} NOT NULL,
	delivered_at  {{time}}
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at);
