// Package pki holds Muster's certificate authority: the CA hierarchy (root,
// manufacturing, operational and server CAs), the key stores that keep CA
// private keys (encrypted files or PKCS#11 tokens), certificate profiles for
// birth and operational device identities, CSR admission checks, CRL and
// OCSP output, client certificate verification and proof of possession for
// external manufacturer CAs.
//
// The package does no storage of its own: issued certificates, revocations
// and trust anchors are recorded elsewhere and reach this package through
// small interfaces (StatusSource, TrustSource, RevocationChecker) that the
// callers implement.
package pki
