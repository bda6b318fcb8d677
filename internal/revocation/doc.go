// Package revocation makes certificate revocation take effect everywhere:
// it revokes certificates (one, or all of a device's) through the store,
// keeps an in-memory revocation set on every node that follows the store's
// revocation feed, so that device listeners refuse a revoked certificate on
// new connections within a second on any node sharing the database, and
// publishes each CA's revocations as a CRL and through an OCSP responder.
//
// docs/revocation.md describes the HTTP paths, the reason codes and how the
// one-second guarantee is kept.
package revocation
