-- Learned behaviour-detection state, checkpointed by each node so a
-- restart does not send every device back to learning for a day
-- (docs/decisions/0017-detection-state.md). state is the detect package's
-- versioned binary encoding; node is the node that wrote the row last,
-- which is the one that restores it on start.
--
-- BYTEA is PostgreSQL's binary type; SQLite accepts the name and stores
-- the bytes it is given unchanged.
--
-- A device's state goes with the device: the foreign key deletes it when
-- the device row is deleted, and the store writes state only for devices
-- that exist.
CREATE TABLE detect_device_state (
	device_id  {{key}} PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	node       {{key}} NOT NULL,
	state      BYTEA NOT NULL,
	updated_at {{time}} NOT NULL
);
-- A node restores what it wrote.
CREATE INDEX detect_device_state_node ON detect_device_state (node, device_id);

-- Cohort (model) baselines are learned by each node from the devices it
-- serves, so each node keeps its own.
CREATE TABLE detect_cohort_state (
	cohort     {{key}} NOT NULL,
	node       {{key}} NOT NULL,
	state      BYTEA NOT NULL,
	updated_at {{time}} NOT NULL,
	PRIMARY KEY (node, cohort)
) {{without_rowid}};
