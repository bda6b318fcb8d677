package audit

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/muster-iot/muster/internal/store"
)

// Severities, most severe first.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
)

// Severities lists the severities, most severe first.
func Severities() []string {
	return []string{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow}
}

// Subject kinds of findings.
const (
	SubjectDevice      = "device"
	SubjectCertificate = "certificate"
	SubjectCA          = "ca"
	SubjectTemplate    = "template"
	SubjectNode        = "node"
	SubjectFleet       = "fleet"
)

// Check is one audit check.
type Check struct {
	ID          string `json:"id"`
	Severity    string `json:"severity"`
	Title       string `json:"title"`
	Description string `json:"description"`
	// run reports the check's findings through emit.
	run func(ctx context.Context, sc *scan, emit func(store.Finding)) error
}

// finding builds a finding of check c about subject. detail, when set,
// distinguishes several findings of one check about one subject.
func (c *Check) finding(kind, subject, deviceID, detail, message, fix string, evidence any) store.Finding {
	key := c.ID + ":" + subject
	if detail != "" {
		key += ":" + detail
	}
	var ev json.RawMessage
	if evidence != nil {
		ev, _ = json.Marshal(evidence) // evidence is plain data; cannot fail
	}
	return store.Finding{Key: safeKey(key), Check: c.ID, Severity: c.Severity, SubjectKind: kind, Subject: subject,
		DeviceID: deviceID, Message: message, Fix: fix, Evidence: ev}
}

var unsafeKeyChars = regexp.MustCompile(`[^A-Za-z0-9._:\-]`)

// safeKey makes a finding key a valid name (it travels in URL paths and
// cursors): characters other than letters, digits and . _ : - become "_", and keys are
// at most 128 characters.
func safeKey(k string) string {
	k = unsafeKeyChars.ReplaceAllString(k, "_")
	if len(k) > 128 {
		k = k[:128]
	}
	return strings.TrimLeft(k, "._:-")
}
