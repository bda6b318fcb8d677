package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Component is one entry of a bill of materials, flattened from CycloneDX's
// nested component tree so it can be indexed and queried.
type Component struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Group   string `json:"group,omitempty"`
	Version string `json:"version,omitempty"`
	PURL    string `json:"purl,omitempty"`
}

// cycloneDX holds just the parts of a CycloneDX document Muster checks.
type cycloneDX struct {
	BOMFormat    string          `json:"bomFormat"`
	SpecVersion  string          `json:"specVersion"`
	Version      *int            `json:"version"`
	SerialNumber string          `json:"serialNumber"`
	Metadata     json.RawMessage `json:"metadata"`
	Components   []cdxComponent  `json:"components"`
}

type cdxComponent struct {
	Type       string         `json:"type"`
	Name       string         `json:"name"`
	Group      string         `json:"group"`
	Version    string         `json:"version"`
	PURL       string         `json:"purl"`
	Components []cdxComponent `json:"components"`
}

// cdxTypes are the component types CycloneDX 1.5 to 1.7 define.
var cdxTypes = map[string]bool{
	"application": true, "framework": true, "library": true, "container": true,
	"platform": true, "operating-system": true, "device": true, "device-driver": true,
	"firmware": true, "file": true, "machine-learning-model": true, "data": true,
	"cryptographic-asset": true,
}

// MaxBOMComponents bounds how many components one BOM may list.
const MaxBOMComponents = 10000

// ParseBOM validates a CycloneDX JSON bill of materials (spec 1.5 or later)
// and returns its components flattened. It checks what Muster relies on: the
// format marker, the spec version, and every component's type and name.
func ParseBOM(raw []byte) ([]Component, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var doc cycloneDX
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a CycloneDX JSON document: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a CycloneDX JSON document: trailing data after the object")
	}
	if doc.BOMFormat != "CycloneDX" {
		return nil, fmt.Errorf("bomFormat must be \"CycloneDX\", got %q", doc.BOMFormat)
	}
	if !specAtLeast15(doc.SpecVersion) {
		return nil, fmt.Errorf("specVersion %q is not supported: CycloneDX 1.5 or later is required", doc.SpecVersion)
	}
	if doc.Version != nil && *doc.Version < 1 {
		return nil, errors.New("version must be 1 or greater")
	}
	if doc.SerialNumber != "" && !strings.HasPrefix(doc.SerialNumber, "urn:uuid:") {
		return nil, errors.New("serialNumber must be a urn:uuid: URN")
	}
	var out []Component
	var walk func(path string, cs []cdxComponent) error
	walk = func(path string, cs []cdxComponent) error {
		for i, c := range cs {
			p := fmt.Sprintf("%s[%d]", path, i)
			if !cdxTypes[c.Type] {
				return fmt.Errorf("%s.type %q is not a CycloneDX component type", p, c.Type)
			}
			if strings.TrimSpace(c.Name) == "" {
				return fmt.Errorf("%s.name is required", p)
			}
			if len(out) >= MaxBOMComponents {
				return fmt.Errorf("more than %d components", MaxBOMComponents)
			}
			out = append(out, Component{Type: c.Type, Name: c.Name, Group: c.Group, Version: c.Version, PURL: c.PURL})
			if err := walk(p+".components", c.Components); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("components", doc.Components); err != nil {
		return nil, err
	}
	return out, nil
}

func specAtLeast15(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > 1 || (ma == 1 && mi >= 5)
}
