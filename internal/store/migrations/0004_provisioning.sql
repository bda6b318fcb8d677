-- Provisioning: templates (every version kept), provisioning requests
-- (idempotency, in-flight detection and manual approvals) and installer
-- claims.

-- A provisioning template. Each edit adds a version; certificates record
-- the name and version they were issued under, so editing never changes
-- what was issued. deleted_at set on every version hides the template.
CREATE TABLE templates (
	name       {{key}} NOT NULL,
	version    {{int64}} NOT NULL,
	doc        TEXT NOT NULL,       -- the template as JSON
	created_at {{time}} NOT NULL,
	created_by TEXT NOT NULL,
	deleted_at {{time}},
	PRIMARY KEY (name, version)
);

-- One provisioning attempt per requester and CSR. requester is who asked:
-- birth:<key fingerprint>, claim:<claim id> or device:<device id> for a
-- renewal. csr_sha256 is the SHA-256 of the CSR's DER, so the same request
-- retried finds its row. status: pending (waits for an operator), approved
-- (issues on the next retry), rejected, issued.
CREATE TABLE provisioning_requests (
	id          {{key}} PRIMARY KEY,
	requester   {{key}} NOT NULL,
	csr_sha256  {{key}} NOT NULL,
	device_id   {{key}} NOT NULL,
	kind        TEXT NOT NULL,      -- provision | reprovision | renew
	template    TEXT NOT NULL,
	template_version {{int64}} NOT NULL,
	status      {{key}} NOT NULL,
	parameters  TEXT NOT NULL,      -- JSON object of the rendered parameters
	ca_id       TEXT NOT NULL,
	cert_serial TEXT NOT NULL,
	reason      TEXT NOT NULL,
	created_at  {{time}} NOT NULL,
	updated_at  {{time}} NOT NULL,
	decided_by  TEXT NOT NULL,
	decided_at  {{time}}
);
CREATE UNIQUE INDEX provisioning_requests_csr ON provisioning_requests (requester, csr_sha256);
-- Only pending requests are listed by status (the approvals queue); a
-- partial index leaves the far more numerous issued ones out, so issuing
-- does not write to it.
CREATE INDEX provisioning_requests_pending ON provisioning_requests (id) WHERE status = 'pending';

-- A short-lived, single-use claim an installer creates for a device that
-- has no birth certificate. Only the SHA-256 of the secret is kept.
CREATE TABLE claims (
	id          {{key}} PRIMARY KEY,
	secret_hash {{key}} NOT NULL UNIQUE,
	factory     TEXT NOT NULL,
	model       TEXT NOT NULL,
	serial      TEXT NOT NULL,
	template    TEXT NOT NULL,
	created_at  {{time}} NOT NULL,
	created_by  TEXT NOT NULL,
	expires_at  {{time}} NOT NULL,
	used_at     {{time}},
	-- The CSR of the request that used the claim: a retry of that same
	-- request may use it again until it expires, nothing else may.
	csr_sha256  TEXT NOT NULL,
	device_id   TEXT NOT NULL
);
