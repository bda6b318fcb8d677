package vuln

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Range types of the OSV schema.
const (
	RangeSemver    = "SEMVER"
	RangeEcosystem = "ECOSYSTEM"
	RangeGit       = "GIT"
)

// Advisory is an OSV record, with the fields Muster reads. The record as
// it was imported is kept by the store, so nothing else is lost.
type Advisory struct {
	ID        string     `json:"id"`
	Modified  time.Time  `json:"modified"`
	Published *time.Time `json:"published,omitempty"`
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
	Aliases   []string   `json:"aliases,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Details   string     `json:"details,omitempty"`
	Affected  []Affected `json:"affected,omitempty"`
	// Severity is kept as given (CVSS vectors and the like).
	Severity json.RawMessage `json:"severity,omitempty"`
}

// Affected names one package and the versions of it an advisory affects.
type Affected struct {
	Package  Package  `json:"package"`
	Ranges   []Range  `json:"ranges,omitempty"`
	Versions []string `json:"versions,omitempty"`
}

// Package identifies a package as OSV does.
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	PURL      string `json:"purl,omitempty"`
}

// Range is a set of versions described by events in its type's order.
type Range struct {
	Type   string  `json:"type"`
	Repo   string  `json:"repo,omitempty"`
	Events []Event `json:"events"`
}

// Event is one boundary of a range; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Parse reads one OSV record strictly enough that matching can trust it:
// an id and modified time, every affected package named, every range of a
// known type with well-formed events, and SEMVER versions that parse.
func Parse(raw []byte) (*Advisory, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var a Advisory
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("not an OSV JSON record: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not an OSV JSON record: trailing data after the object")
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

func (a *Advisory) validate() error {
	switch {
	case strings.TrimSpace(a.ID) == "":
		return errors.New("id is required")
	case len(a.ID) > 200:
		return errors.New("id is longer than 200 characters")
	case a.Modified.IsZero():
		return fmt.Errorf("%s: modified (RFC 3339 time) is required", a.ID)
	}
	for i, af := range a.Affected {
		at := fmt.Sprintf("%s: affected[%d]", a.ID, i)
		if af.Package.Name == "" && af.Package.PURL == "" {
			return fmt.Errorf("%s: package.name (or package.purl) is required", at)
		}
		for j, r := range af.Ranges {
			if err := r.validate(af.Package.Ecosystem); err != nil {
				return fmt.Errorf("%s.ranges[%d]: %w", at, j, err)
			}
		}
	}
	return nil
}

func (r Range) validate(ecosystem string) error {
	switch r.Type {
	case RangeSemver, RangeEcosystem, RangeGit:
	default:
		return fmt.Errorf("type %q is not SEMVER, ECOSYSTEM or GIT", r.Type)
	}
	if len(r.Events) == 0 {
		return errors.New("events must not be empty")
	}
	order := orderFor(r.Type, ecosystem)
	introduced := false
	for i, e := range r.Events {
		kind, v, err := e.only()
		if err != nil {
			return fmt.Errorf("events[%d]: %w", i, err)
		}
		if kind == "introduced" {
			introduced = true
		}
		if r.Type == RangeGit || v == "0" && kind == "introduced" || v == "*" && kind == "limit" {
			continue
		}
		if _, err := order(v); err != nil {
			return fmt.Errorf("events[%d].%s: %w", i, kind, err)
		}
	}
	if !introduced {
		return errors.New("events need an introduced event")
	}
	return nil
}

// only returns the event's one set field and its value.
func (e Event) only() (kind, value string, err error) {
	n := 0
	for _, f := range []struct{ k, v string }{{"introduced", e.Introduced}, {"fixed", e.Fixed},
		{"last_affected", e.LastAffected}, {"limit", e.Limit}} {
		if f.v != "" {
			kind, value = f.k, f.v
			n++
		}
	}
	if n != 1 {
		return "", "", errors.New("an event sets exactly one of introduced, fixed, last_affected, limit")
	}
	return kind, value, nil
}
