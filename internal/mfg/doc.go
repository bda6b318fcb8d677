// Package mfg holds the pure parts of the manufacturing line: factory
// scopes, streaming manifest readers (CSV and JSON lines) and a generator
// for trying them out, per-model bills of materials, the mapping from a
// manifest row to a fleet.Device, key modes, CSR PEM decoding, per-row
// results and the on-disk report a CLI writes.
//
// Nothing here touches a database or a CA, and nothing but the standard
// library and package fleet is imported: every row rule can be tested
// exhaustively, manifests of any size stream through in constant memory,
// and the SDK can share these types. The batch processor that combines them
// with the store and the PKI is package mfg/batch.
package mfg
