package fleet

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Event is one entry of an append-only, hash-chained history: a device's
// history, or the fleet audit log for admin actions that concern no single
// device. Events are never updated in place; Hash covers every other field,
// including the previous event's hash, so altering any stored event breaks
// the chain from that event on.
type Event struct {
	// Subject is the device id, or "fleet" for the fleet audit log.
	Subject string    `json:"subject"`
	Seq     int64     `json:"seq"` // 1-based position in the subject's chain
	Type    string    `json:"type"`
	Actor   string    `json:"actor"`
	At      time.Time `json:"at"`
	// Data is what changed, as JSON. It is hashed byte for byte as stored.
	Data     json.RawMessage `json:"data,omitempty"`
	PrevHash string          `json:"prevHash"`
	Hash     string          `json:"hash"`
}

// FleetSubject is the Subject of fleet audit log events.
const FleetSubject = "fleet"

// Event types written by the registry. Other packages add their own.
const (
	EventCreated      = "device.created"
	EventUpdated      = "device.updated"
	EventStateChanged = "device.state_changed"
	EventMaintenance  = "device.maintenance_added"
	EventQC           = "device.qc_added"
	EventTest         = "device.test_added"
	EventDecommission = "device.decommissioned"
	EventDisposal     = "device.disposed"
	EventTokenCreated = "token.created"
	EventTokenRevoked = "token.revoked"
	// EventJobCancelled records who stopped a bulk job, and why (data: id,
	// reason).
	EventJobCancelled = "job.cancelled"
	// EventJobDeleted records who deleted a finished bulk job with its
	// stored manifest and results (data: id, op, status, rows).
	EventJobDeleted = "job.deleted"
	// EventCertificateRevoked records that one of the device's certificates
	// was revoked (data: caId, serial, kind, reason).
	EventCertificateRevoked = "certificate.revoked"
)

// Seal fills in PrevHash, Seq and Hash so that e follows prev in its chain.
// prev is nil for the first event of a subject.
func (e *Event) Seal(prev *Event) {
	e.Seq = 1
	e.PrevHash = ""
	if prev != nil {
		e.Seq = prev.Seq + 1
		e.PrevHash = prev.Hash
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	e.Hash = e.computeHash()
}

// computeHash hashes every field but Hash with length prefixes, so no two
// different events can encode to the same bytes.
func (e *Event) computeHash() string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], uint64(e.Seq))
	field([]byte("muster-event-v1"))
	field([]byte(e.Subject))
	field(seq[:])
	field([]byte(e.Type))
	field([]byte(e.Actor))
	field([]byte(e.At.UTC().Format(time.RFC3339Nano)))
	field(e.Data)
	field([]byte(e.PrevHash))
	return hex.EncodeToString(h.Sum(nil))
}

// ChainBreak describes the first event at which a chain stops verifying.
type ChainBreak struct {
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

// VerifyChain recomputes a chain given in order and returns the first broken
// link, or nil when every event is intact.
func VerifyChain(events []Event) *ChainBreak {
	var prev *Event
	for i := range events {
		e := &events[i]
		wantSeq, wantPrev := int64(1), ""
		if prev != nil {
			wantSeq, wantPrev = prev.Seq+1, prev.Hash
		}
		switch {
		case e.Seq != wantSeq:
			return &ChainBreak{Seq: e.Seq, Reason: fmt.Sprintf("sequence gap: expected event %d", wantSeq)}
		case e.PrevHash != wantPrev:
			return &ChainBreak{Seq: e.Seq, Reason: "previous-hash link does not match the event before it"}
		case e.computeHash() != e.Hash:
			return &ChainBreak{Seq: e.Seq, Reason: "event content does not match its hash (altered after it was written)"}
		}
		prev = e
	}
	return nil
}
