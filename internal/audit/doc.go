// Package audit is Muster's configuration audit: checks over the registry,
// the certificates, the gateway's metering and the histories that each
// report findings (a severity, a subject, evidence and a suggested fix), a
// runner that records each run and keeps findings under stable keys so a
// new run updates what an earlier one found, and a schedule that runs the
// audit once per interval across the nodes sharing a database.
//
// docs/audit.md describes every check, its parameters and defaults.
package audit
