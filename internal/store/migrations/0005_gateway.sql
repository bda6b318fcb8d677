-- The device gateway: change polling, presence and metering.

-- The gateway polls for devices changed since its last look, to apply
-- suspension and quarantine to live sessions within a second.
CREATE INDEX devices_updated_at ON devices (updated_at);

-- Presence: one row per device that ever connected, overwritten in place,
-- so connecting costs no history event and no device version. connected is
-- 1 while a session is open on node.
CREATE TABLE device_presence (
	device_id    {{key}} PRIMARY KEY,
	connected    {{int64}} NOT NULL,
	node         TEXT NOT NULL,
	remote       TEXT NOT NULL,
	connected_at {{time}} NOT NULL,
	last_seen    {{time}} NOT NULL
);

-- Metering: one row per device, fixed window and node. Each node owns its
-- rows and overwrites them while the window is open, so nodes never merge
-- each other's counters; readers sum over nodes. Sets (disconnect reasons,
-- topics, source addresses) are JSON, capped by the writer.
CREATE TABLE device_metrics (
	device_id     {{key}} NOT NULL,
	window_start  {{time}} NOT NULL,
	node          {{key}} NOT NULL,
	window_secs   {{int64}} NOT NULL,
	attempts      {{int64}} NOT NULL,
	connects      {{int64}} NOT NULL,
	takeovers     {{int64}} NOT NULL,
	auth_failures {{int64}} NOT NULL,
	msgs_in       {{int64}} NOT NULL,
	msgs_out      {{int64}} NOT NULL,
	bytes_in      {{int64}} NOT NULL,
	bytes_out     {{int64}} NOT NULL,
	reports       {{int64}} NOT NULL,
	bad_reports   {{int64}} NOT NULL,
	disconnects   TEXT NOT NULL,
	topics        TEXT NOT NULL,
	source_ips    TEXT NOT NULL,
	PRIMARY KEY (device_id, window_start, node)
) {{without_rowid}};
