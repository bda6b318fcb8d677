// Package agent is the device side of Muster provisioning, for device
// firmware written in Go. An Agent holds a device's birth credential,
// generates the device's own operational key, provisions over Muster's
// JSON API or EST, keeps the credentials in a directory (replaced
// atomically, so a power cut never leaves a key without its certificate),
// renews the certificate before it expires and re-provisions with the
// birth credential when renewal is no longer possible.
//
// A request that waits for manual approval is retried with the same key and
// CSR, as Retry-After says, so the device gets its certificate as soon as
// an operator approves it, even across restarts: the pending key and CSR
// are kept in the directory too.
//
// ConnectMQTT opens one MQTT 5 session with Muster's gateway as the
// device's operational identity; KeepMQTT keeps one: a Link reconnects with
// exponential backoff and jitter, with the agent's current certificate each
// time (at once after a rotate command renewed it), makes its
// subscriptions again, follows the gateway's server redirects, and stops
// with an error wrapping ErrGatewayRefused when the gateway refuses the
// device for good (revoked certificate, decommissioned device).
package agent
