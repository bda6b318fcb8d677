// Package est is the RFC 7030 (Enrollment over Secure Transport) front
// door of the provisioning pipeline, with RFC 8951's base64 rules. It
// translates EST requests into provision.Request and the pipeline's
// answers back; every rule is the pipeline's.
//
// Routes, under /.well-known/est/ and /.well-known/est/<template>/:
// cacerts (any device), simpleenroll (birth certificates: provisioning and
// re-provisioning), simplereenroll (operational certificates: renewal) and
// csrattrs (any device). The client authenticates with its TLS
// certificate; the device listener checks it before any handler runs.
package est
