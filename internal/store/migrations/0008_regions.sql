-- Regions: where devices are sent, and how they find out. A device's home
-- region and the measurements behind it live in its record (attributes
-- muster.region and muster.region.*), written in the same transaction as
-- the provisioning or re-homing that chose it; this table holds only the
-- regions themselves.

-- One region. Endpoints are what devices are told; the probe URL is what
-- they time. latitude and longitude are both set or both NULL. status is
-- enabled (allocated to), draining (no new devices; its devices are moved)
-- or disabled (neither). version counts updates, for optimistic updates.
CREATE TABLE regions (
	name          {{key}} PRIMARY KEY,
	provision_url TEXT NOT NULL,
	mqtt_url      TEXT NOT NULL,
	probe_url     TEXT NOT NULL,
	latitude      DOUBLE PRECISION,
	longitude     DOUBLE PRECISION,
	weight        {{int64}} NOT NULL,
	status        TEXT NOT NULL,
	version       {{int64}} NOT NULL,
	created_at    {{time}} NOT NULL,
	updated_at    {{time}} NOT NULL
);
