-- The device registry, its query indexes, the hash-chained histories and
-- API tokens. {{...}} tokens are column types the dialect names.

-- One row per device. doc is the whole fleet.Device as JSON except its BOM,
-- which is kept byte for byte in boms under its SHA-256 (devices of one
-- model share one BOM); the other columns are copies of doc fields that
-- queries filter on. owner holds the owner's index key (see indexKey): the
-- full owner is in doc.
CREATE TABLE devices (
	id         {{key}} PRIMARY KEY,
	factory    {{key}} NOT NULL,
	model      {{key}} NOT NULL,
	serial     {{key}} NOT NULL,
	batch      {{key}} NOT NULL,
	state      {{key}} NOT NULL,
	owner      {{key}} NOT NULL,
	version    {{int64}} NOT NULL,
	head_seq   {{int64}} NOT NULL,
	head_hash  TEXT NOT NULL,
	created_at {{time}} NOT NULL,
	updated_at {{time}} NOT NULL,
	bom_sha256 TEXT,
	doc        TEXT NOT NULL
);

-- A serial is unique per factory and model. Leading with serial lets the
-- same index serve serial-prefix searches.
CREATE UNIQUE INDEX devices_serial_factory_model ON devices (serial, factory, model);

-- Keyset pagination walks id order within each filter.
CREATE INDEX devices_state_id ON devices (state, id);
CREATE INDEX devices_model_id ON devices (model, id);
CREATE INDEX devices_factory_id ON devices (factory, id);
-- Many devices have no batch or owner yet; they stay out of these indexes.
CREATE INDEX devices_batch_id ON devices (batch, id) WHERE batch <> '';
CREATE INDEX devices_owner_id ON devices (owner, id) WHERE owner <> '';

-- Side tables index the list-valued fields of doc. The store rewrites them
-- in the transaction that writes the device, from the difference between
-- the old and new record, so they need no index by device.
CREATE TABLE device_groups (
	grp       {{key}} NOT NULL,
	device_id {{key}} NOT NULL,
	PRIMARY KEY (grp, device_id)
) {{without_rowid}};

CREATE TABLE device_tags (
	tag       {{key}} NOT NULL,
	device_id {{key}} NOT NULL,
	PRIMARY KEY (tag, device_id)
) {{without_rowid}};

-- value is the attribute value's index key (see indexKey).
CREATE TABLE device_attrs (
	key       {{key}} NOT NULL,
	value     {{key}} NOT NULL,
	device_id {{key}} NOT NULL,
	PRIMARY KEY (key, value, device_id)
) {{without_rowid}};

-- CycloneDX BOMs, byte for byte as given, by the hex SHA-256 of those bytes.
CREATE TABLE boms (
	sha256 {{key}} PRIMARY KEY,
	doc    TEXT NOT NULL
);

-- Every component of every device's BOM, flattened; idx is its position in
-- document order. name_key is the name's index key (see indexKey); the
-- component as written is in the BOM.
CREATE TABLE bom_components (
	name_key  {{key}} NOT NULL,
	device_id {{key}} NOT NULL,
	idx       {{int64}} NOT NULL,
	type      TEXT NOT NULL,
	grp       TEXT NOT NULL,
	version   TEXT NOT NULL,
	purl      TEXT NOT NULL,
	PRIMARY KEY (name_key, device_id, idx)
) {{without_rowid}};

-- Append-only hash-chained histories: one chain per device and the fleet
-- audit log (subject 'fleet'). data is kept as the exact bytes that were
-- hashed, never as a re-encoded JSON type.
CREATE TABLE events (
	subject   {{key}} NOT NULL,
	seq       {{int64}} NOT NULL,
	type      TEXT NOT NULL,
	actor     TEXT NOT NULL,
	at        {{time}} NOT NULL,
	data      TEXT,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL,
	PRIMARY KEY (subject, seq)
) {{without_rowid}};

-- The head of the fleet audit log. Appending locks this row, which orders
-- concurrent appends; device heads live on their devices rows.
CREATE TABLE fleet_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  {{int64}} NOT NULL,
	hash TEXT NOT NULL
);
INSERT INTO fleet_head (id, seq, hash) VALUES (1, 0, '');

-- API tokens. hash is the SHA-256 of the secret; the secret is never stored.
CREATE TABLE tokens (
	id         {{key}} PRIMARY KEY,
	name       TEXT NOT NULL,
	role       TEXT NOT NULL,
	factory    TEXT NOT NULL,
	hash       {{key}} NOT NULL UNIQUE,
	created_at {{time}} NOT NULL,
	created_by TEXT NOT NULL,
	expires_at {{time}},
	revoked_at {{time}}
);
