-- Bulk jobs (decision 0012) and leases: work that one node of several
-- sharing the database must do at a time.

-- A bulk job: one operation applied to every row of a manifest. status is
-- uploading (the manifest is still arriving), queued, running, done or
-- cancelled. spec is the job's JSON spec (operation and template). The
-- counters are advanced in the transaction that applies each chunk, so they
-- always equal the sum of the chunks marked done.
CREATE TABLE jobs (
	id               {{key}} PRIMARY KEY,
	op               TEXT NOT NULL,
	spec             TEXT NOT NULL,
	status           {{key}} NOT NULL,
	format           TEXT NOT NULL,
	manifest_sha256  TEXT NOT NULL,
	rows_total       {{int64}} NOT NULL,
	chunks_total     {{int64}} NOT NULL,
	chunks_done      {{int64}} NOT NULL,
	rows_ok          {{int64}} NOT NULL,
	rows_unchanged   {{int64}} NOT NULL,
	rows_error       {{int64}} NOT NULL,
	cancel_requested {{int64}} NOT NULL,
	node             TEXT NOT NULL,      -- the node that last ran it
	created_at       {{time}} NOT NULL,
	created_by       TEXT NOT NULL,
	updated_at       {{time}} NOT NULL,
	started_at       {{time}},
	finished_at      {{time}}
);
-- Runners look for unfinished jobs; finished ones are the vast majority.
CREATE INDEX jobs_unfinished ON jobs (created_at) WHERE status IN ('uploading', 'queued', 'running');

-- The manifest, durably, in chunks of normalised rows (JSON lines), so any
-- node can finish a job. A chunk is applied, marked done and given its
-- per-row results (JSON lines, one per row, in row order) in one
-- transaction: after a crash every chunk is either wholly applied with its
-- results or not at all.
CREATE TABLE job_chunks (
	job_id    {{key}} NOT NULL,
	seq       {{int64}} NOT NULL,
	first_row {{int64}} NOT NULL,  -- 1-based number of the chunk's first row
	row_count {{int64}} NOT NULL,
	rows_data TEXT NOT NULL,
	done      {{int64}} NOT NULL,
	results   TEXT NOT NULL,
	PRIMARY KEY (job_id, seq)
) {{without_rowid}};

-- A named lease: held by holder until expires_at unless renewed. token is
-- the fencing number: it grows every time the lease changes hands, and a
-- writer that checks it in its own transaction cannot commit once another
-- holder has taken over.
CREATE TABLE leases (
	name        {{key}} PRIMARY KEY,
	holder      TEXT NOT NULL,
	token       {{int64}} NOT NULL,
	acquired_at {{time}} NOT NULL,
	expires_at  {{time}} NOT NULL
);
