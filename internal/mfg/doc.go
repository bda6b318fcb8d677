// Package mfg holds the pure parts of manufacturing registration: factory
// scopes, streaming manifest readers (CSV and JSON lines), per-model bills of
// materials, the mapping from a manifest row to a fleet.Device, CSR PEM
// decoding, per-row results and the on-disk report a CLI writes.
//
// Nothing here touches a database or a CA. The batch processor combines these
// parts with the store and the PKI; keeping them pure lets every row rule be
// tested exhaustively and lets manifests of any size stream through in
// constant memory.
package mfg
