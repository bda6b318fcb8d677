-- Factories, certificate authorities, issued certificates and their
-- revocation, and manufacturing batches.

-- A factory (manufacturer line) and the models and serial numbers it may
-- register. ca_mode is managed (Muster runs its birth CA) or external (the
-- maker's own IDevID CA, registered after proof of possession).
CREATE TABLE factories (
	name           {{key}} PRIMARY KEY,
	models         TEXT NOT NULL,   -- JSON array of model names
	serial_pattern TEXT NOT NULL,   -- RE2, matched against the whole serial
	ca_mode        TEXT NOT NULL,
	created_at     {{time}} NOT NULL,
	created_by     TEXT NOT NULL
);

-- Every CA Muster trusts or signs with. purpose is root, operational,
-- server, manufacturing (Muster's birth CA for a factory) or external (a
-- maker's CA, trust anchor only, no key). key_label names the key in the key
-- store; empty for external CAs. status: active (signs and is trusted),
-- retiring (trusted until retire_at, no longer signs), retired.
CREATE TABLE cas (
	id         {{key}} PRIMARY KEY,
	purpose    {{key}} NOT NULL,
	factory    {{key}} NOT NULL,    -- '' unless manufacturing or external
	key_label  TEXT NOT NULL,
	cert_pem   TEXT NOT NULL,
	subject_key_id {{key}} NOT NULL,
	status     {{key}} NOT NULL,
	not_after  {{time}} NOT NULL,
	retire_at  {{time}},
	created_at {{time}} NOT NULL
);
CREATE INDEX cas_purpose ON cas (purpose, factory, status);

-- Every certificate Muster issued, and the external birth certificates it
-- has seen. serial is lowercase hex without leading zeros; the pair
-- (ca_id, serial) is what CRLs and OCSP look up. fingerprint is the SHA-256
-- of the public key, to refuse one key for two devices.
CREATE TABLE certificates (
	ca_id        {{key}} NOT NULL,
	serial       {{key}} NOT NULL,
	device_id    {{key}} NOT NULL,
	kind         {{key}} NOT NULL,  -- birth | operational | server
	fingerprint  {{key}} NOT NULL,
	not_before   {{time}} NOT NULL,
	not_after    {{time}} NOT NULL,
	cert_pem     TEXT NOT NULL,
	created_at   {{time}} NOT NULL,
	revoked_at   {{time}},
	revoke_reason {{int64}},
	revoke_seq   {{int64}},        -- position in the revocation feed, for caches
	PRIMARY KEY (ca_id, serial)
);
CREATE INDEX certificates_device ON certificates (device_id, kind);
CREATE INDEX certificates_fingerprint ON certificates (fingerprint);
CREATE INDEX certificates_revoked ON certificates (revoke_seq) WHERE revoke_seq IS NOT NULL;

-- The revocation feed's head: every revocation takes the next number, so a
-- node's cache asks only for what is newer than what it has.
CREATE TABLE revocation_head (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq {{int64}} NOT NULL
);
INSERT INTO revocation_head (id, seq) VALUES (1, 0);

-- The latest CRL of each CA, with its number (monotonic per CA).
CREATE TABLE crls (
	ca_id       {{key}} PRIMARY KEY,
	number      {{int64}} NOT NULL,
	this_update {{time}} NOT NULL,
	next_update {{time}} NOT NULL,
	der         TEXT NOT NULL       -- base64 of the DER
);

-- One manufacturing batch submission and its totals.
CREATE TABLE batches (
	id         {{key}} PRIMARY KEY,
	factory    {{key}} NOT NULL,
	key_mode   TEXT NOT NULL,       -- csr | mint
	status     TEXT NOT NULL,       -- running | done | failed
	rows_total {{int64}} NOT NULL,
	rows_ok    {{int64}} NOT NULL,
	rows_existing {{int64}} NOT NULL,
	rows_error {{int64}} NOT NULL,
	created_at {{time}} NOT NULL,
	created_by TEXT NOT NULL,
	finished_at {{time}}
);
CREATE INDEX batches_factory ON batches (factory, id);
