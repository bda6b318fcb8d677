-- Several nodes on one database (issue 6, docs/decisions/0013-many-nodes.md).

-- CA keys as the key files hold them: PKCS#8 encrypted with the CA
-- passphrase (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC), PEM. A node that
-- lacks a key file fetches it from here, so nodes share nothing but the
-- database and the passphrase. Keys on a PKCS#11 token never come here.
CREATE TABLE ca_keys (
	label      {{key}} PRIMARY KEY,
	key_pem    TEXT NOT NULL,
	created_at {{time}} NOT NULL
);
