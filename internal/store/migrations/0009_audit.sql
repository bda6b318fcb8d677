-- Configuration audit and vulnerability scanning: audit runs and their
-- findings (suppressions live on the finding they silence), and the OSV
-- advisories devices are matched against.

-- One audit run. slot is empty for runs asked for on demand; a scheduled
-- run takes the slot of its interval ('scheduled:' and the slot's start),
-- and the unique index lets exactly one node of several sharing the
-- database run each slot. counts is JSON (AuditCounts); checks a JSON array.
CREATE TABLE audit_runs (
	id          {{key}} PRIMARY KEY,
	slot        {{key}} NOT NULL,
	kind        TEXT NOT NULL,      -- manual | scheduled
	actor       TEXT NOT NULL,
	node        TEXT NOT NULL,
	status      {{key}} NOT NULL,   -- running | done | failed
	checks      TEXT NOT NULL,
	started_at  {{time}} NOT NULL,
	finished_at {{time}},
	counts      TEXT NOT NULL,
	error       TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_runs_slot ON audit_runs (slot) WHERE slot <> '';
CREATE INDEX audit_runs_started ON audit_runs (started_at, id);

-- One finding per check and subject, under a stable key (check id, subject
-- and, where a subject can fail a check in several ways, what failed), so a
-- new run updates what an earlier one found instead of adding to it.
-- state: open | resolved; a suppression (reason, who, until when) hides an
-- open finding until it expires, and is also recorded in the fleet audit log.
CREATE TABLE audit_findings (
	finding_key   {{key}} PRIMARY KEY,
	check_id      {{key}} NOT NULL,
	severity      {{key}} NOT NULL,
	subject_kind  TEXT NOT NULL,    -- device | certificate | ca | template | node | fleet
	subject       TEXT NOT NULL,
	device_id     {{key}} NOT NULL, -- '' when the finding concerns no one device
	state         {{key}} NOT NULL,
	message       TEXT NOT NULL,
	fix           TEXT NOT NULL,
	evidence      TEXT NOT NULL,    -- JSON object
	first_seen    {{time}} NOT NULL,
	last_seen     {{time}} NOT NULL,
	resolved_at   {{time}},
	first_run     {{key}} NOT NULL,
	last_run      {{key}} NOT NULL,
	suppressed_until {{time}},
	suppress_reason  TEXT NOT NULL,
	suppressed_by    TEXT NOT NULL
);
CREATE INDEX audit_findings_check ON audit_findings (check_id, finding_key);
CREATE INDEX audit_findings_device ON audit_findings (device_id, finding_key);
CREATE INDEX audit_findings_state ON audit_findings (state, finding_key);

-- OSV advisories, as imported (doc keeps the record byte for byte), and the
-- package names they affect, lowercased, to find them by component name.
CREATE TABLE advisories (
	id          {{key}} PRIMARY KEY,
	modified    {{time}} NOT NULL,
	summary     TEXT NOT NULL,
	source      TEXT NOT NULL,      -- the file it was imported from
	imported_at {{time}} NOT NULL,
	imported_by TEXT NOT NULL,
	doc         TEXT NOT NULL
);

CREATE TABLE advisory_packages (
	name_key    {{key}} NOT NULL,
	advisory_id {{key}} NOT NULL,
	ecosystem   {{key}} NOT NULL,
	PRIMARY KEY (name_key, advisory_id, ecosystem)
) {{without_rowid}};
CREATE INDEX advisory_packages_advisory ON advisory_packages (advisory_id);

-- The gateway counts connection attempts refused because the certificate
-- is revoked, for the audit's "revoked certificate still connecting" check.
ALTER TABLE device_metrics ADD COLUMN revoked_attempts {{int64}} NOT NULL DEFAULT 0;
