package mfg

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
)

// BOMSet holds one CycloneDX bill of materials per model, for the rows that
// do not carry their own. Each document is validated once, when the set is
// loaded, not once per row. The zero BOMSet is empty and ready to use.
type BOMSet struct {
	byModel map[string]json.RawMessage
}

// LoadModelBOMs validates the given documents, keyed by model, and returns
// them as a set.
func LoadModelBOMs(docs map[string][]byte) (BOMSet, error) {
	set := BOMSet{byModel: make(map[string]json.RawMessage, len(docs))}
	for model, doc := range docs {
		if err := fleet.ValidName("model", model); err != nil {
			return BOMSet{}, fmt.Errorf("BOM for model %q: %w", model, err)
		}
		if _, err := fleet.ParseBOM(doc); err != nil {
			return BOMSet{}, fmt.Errorf("BOM for model %s: %w", model, err)
		}
		set.byModel[model] = json.RawMessage(doc)
	}
	return set, nil
}

// bomFileSuffixes are the file names LoadModelBOMDir reads, longest first
// so that M1.cdx.json is model M1, not M1.cdx.
var bomFileSuffixes = []string{".cdx.json", ".bom.json", ".json"}

// LoadModelBOMDir loads <model>.cdx.json, <model>.bom.json or <model>.json
// files from dir (other files are ignored) and validates them.
func LoadModelBOMDir(dir string) (BOMSet, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return BOMSet{}, fmt.Errorf("reading model BOMs: %w", err)
	}
	docs := make(map[string][]byte)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		model, ok := modelOfBOMFile(e.Name())
		if !ok {
			continue
		}
		if _, dup := docs[model]; dup {
			return BOMSet{}, fmt.Errorf("reading model BOMs: %s has more than one BOM file in %s", model, dir)
		}
		doc, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return BOMSet{}, fmt.Errorf("reading model BOMs: %w", err)
		}
		docs[model] = doc
	}
	return LoadModelBOMs(docs)
}

func modelOfBOMFile(name string) (string, bool) {
	lower := strings.ToLower(name)
	for _, suffix := range bomFileSuffixes {
		if strings.HasSuffix(lower, suffix) && len(name) > len(suffix) {
			return name[:len(name)-len(suffix)], true
		}
	}
	return "", false
}

// For returns the BOM of model, if the set has one. The document is shared by
// every caller and must not be modified.
func (s BOMSet) For(model string) (json.RawMessage, bool) {
	doc, ok := s.byModel[model]
	return doc, ok
}

// Len returns the number of models with a BOM.
func (s BOMSet) Len() int { return len(s.byModel) }
