package mfg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadModelBOMs(t *testing.T) {
	set, err := LoadModelBOMs(map[string][]byte{"M1": []byte(goodBOM), "M2": []byte(otherBOM)})
	if err != nil {
		t.Fatal(err)
	}
	if doc, ok := set.For("M2"); !ok || string(doc) != otherBOM || set.Len() != 2 {
		t.Errorf("For(M2) = %s, %v; Len %d", doc, ok, set.Len())
	}
	if _, ok := set.For("M3"); ok {
		t.Error("For(M3) found a BOM")
	}
	if _, ok := (BOMSet{}).For("M1"); ok {
		t.Error("the zero BOMSet has a BOM")
	}
	for name, docs := range map[string]map[string][]byte{
		"invalid BOM": {"M1": []byte(`{"bomFormat":"CycloneDX","specVersion":"1.4"}`)},
		"bad model":   {"M 1": []byte(goodBOM)},
	} {
		if _, err := LoadModelBOMs(docs); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestLoadModelBOMDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("M1.cdx.json", goodBOM)
	write("M2.json", otherBOM)
	write("README.txt", "not a BOM")
	if err := os.Mkdir(filepath.Join(dir, "M3.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	set, err := LoadModelBOMDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d1, ok1 := set.For("M1"); !ok1 || string(d1) != goodBOM || set.Len() != 2 {
		t.Errorf("set = %v", set)
	}

	write("M1.bom.json", goodBOM)
	if _, err := LoadModelBOMDir(dir); err == nil || !strings.Contains(err.Error(), "more than one BOM") {
		t.Errorf("two BOMs for M1: err = %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "M1.bom.json")); err != nil {
		t.Fatal(err)
	}
	write("M4.json", `{"bomFormat":"CycloneDX"}`)
	if _, err := LoadModelBOMDir(dir); err == nil || !strings.Contains(err.Error(), "M4") {
		t.Errorf("invalid BOM: err = %v", err)
	}
	if _, err := LoadModelBOMDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing directory: no error")
	}
}
