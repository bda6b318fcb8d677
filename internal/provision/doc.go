// Package provision is Muster's one provisioning pipeline. A device proves
// who it is (a birth certificate checked by the device listener, an
// operational certificate for renewal, or an installer's claim), and the
// pipeline finds or registers its record, checks its lifecycle state and
// the template's re-provisioning policy, renders the template, asks the
// pre-provisioning hook, applies the approval mode, checks the CSR, issues
// the operational certificate and commits state, certificate and history in
// one transaction.
//
// Front doors (the JSON API in this package, EST in package est, MQTT
// later) only translate their wire format into a Request and a Response
// back; every rule lives here. See docs/provisioning.md.
package provision
