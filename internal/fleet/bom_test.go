package fleet

import (
	"strings"
	"testing"
)

const goodBOM = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
 "serialNumber":"urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
 "components":[{"type":"device","name":"mainboard","version":"r3",
   "components":[{"type":"firmware","name":"bootloader","version":"2.1.0","purl":"pkg:generic/bootloader@2.1.0"}]},
  {"type":"library","name":"openssl","version":"3.0.13"}]}`

func TestParseBOM(t *testing.T) {
	cs, err := ParseBOM([]byte(goodBOM))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[1].Name != "bootloader" || cs[1].PURL == "" || cs[2].Version != "3.0.13" {
		t.Fatalf("components = %+v", cs)
	}
}

func TestParseBOMRejects(t *testing.T) {
	cases := map[string]struct{ doc, want string }{
		"not json":      {`{"bomFormat":`, "not a CycloneDX"},
		"trailing":      {`{"bomFormat":"CycloneDX","specVersion":"1.5"} {}`, "trailing"},
		"wrong format":  {`{"bomFormat":"SPDX","specVersion":"1.5"}`, "bomFormat"},
		"old spec":      {`{"bomFormat":"CycloneDX","specVersion":"1.4"}`, "1.5 or later"},
		"bad spec":      {`{"bomFormat":"CycloneDX","specVersion":"one"}`, "not supported"},
		"bad version":   {`{"bomFormat":"CycloneDX","specVersion":"1.5","version":0}`, "version"},
		"bad serial":    {`{"bomFormat":"CycloneDX","specVersion":"1.5","serialNumber":"abc"}`, "urn:uuid"},
		"bad type":      {`{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"gadget","name":"x"}]}`, "components[0].type"},
		"nested noname": {`{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"device","name":"x","components":[{"type":"file"}]}]}`, "components[0].components[0].name"},
		"wrong types":   {`{"bomFormat":"CycloneDX","specVersion":"1.5","components":"x"}`, "not a CycloneDX"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseBOM([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want mention of %q", err, c.want)
			}
		})
	}
}
