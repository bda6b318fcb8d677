-- What the CA registry and the manufacturing line need beyond 0002: one
-- active CA per purpose and factory, proof-of-possession challenges for
-- external manufacturer CAs, and the owner of every certified public key.

-- At most one CA signs for a purpose and factory. Two nodes bootstrapping
-- at once race on this index; the loser adopts the winner's CA.
CREATE UNIQUE INDEX cas_one_active ON cas (purpose, factory) WHERE status = 'active';

-- A nonce issued to a maker registering its own CA for a factory. The maker
-- proves possession of the CA key by signing a certificate whose common name
-- is the nonce; each nonce is good once, until expires_at.
CREATE TABLE ca_challenges (
	nonce      {{key}} PRIMARY KEY,
	factory    {{key}} NOT NULL,
	created_at {{time}} NOT NULL,
	created_by TEXT NOT NULL,
	expires_at {{time}} NOT NULL,
	used_at    {{time}}
);

-- The device each certified public key belongs to (fingerprint as in
-- certificates). The primary key is what makes "one key, one device" hold
-- between concurrent writers on every backend: a second device's insert of
-- the same key fails, or waits for the first and then fails.
CREATE TABLE key_owners (
	fingerprint {{key}} PRIMARY KEY,
	device_id   {{key}} NOT NULL
) {{without_rowid}};
