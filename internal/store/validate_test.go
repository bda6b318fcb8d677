package store

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

// TestValidateMatchesFleet pins validate to fleet.Validate: the same verdict
// and the same first fault for every kind of device, BOM or not.
func TestValidateMatchesFleet(t *testing.T) {
	lat := 100.0
	mods := map[string]func(*fleet.Device){
		"valid":             func(*fleet.Device) {},
		"bad serial":        func(d *fleet.Device) { d.Identity.Serial = "a b" },
		"bad batch":         func(d *fleet.Device) { d.Identity.Batch = "a b" },
		"bad state":         func(d *fleet.Device) { d.Lifecycle.State = "x" },
		"bad group":         func(d *fleet.Device) { d.Inventory.Groups = []string{"a b"} },
		"bad lat":           func(d *fleet.Device) { d.Inventory.Location.Lat, d.Inventory.Location.Lon = &lat, &lat },
		"bad key storage":   func(d *fleet.Device) { d.Provisioning.Security.KeyStorage = "usb" },
		"bad qc":            func(d *fleet.Device) { d.Manufacturing.QC = []fleet.QCResult{{Test: "t"}} },
		"bad serial and qc": func(d *fleet.Device) { d.Identity.Serial = ""; d.Manufacturing.QC = []fleet.QCResult{{}} },
	}
	boms := map[string]string{"no BOM": "", "good BOM": testBOM, "bad BOM": `{"bomFormat":"CycloneDX","specVersion":"1.4"}`, "BOM not JSON": "{"}
	for mname, mod := range mods {
		for bname, bom := range boms {
			t.Run(fmt.Sprintf("%s, %s", mname, bname), func(t *testing.T) {
				d := newTestDevice("SN-1", mod, func(d *fleet.Device) {
					d.Lifecycle.State = fleet.StateManufactured
					if bom != "" {
						d.Manufacturing.BOM = json.RawMessage(bom)
					}
				})
				mod(d)
				want := fmt.Sprint(fleet.Validate(d))
				comps, err := validate(d, bomCache{})
				mustEqual(t, "error", fmt.Sprint(err), want)
				mustEqual(t, "BOM untouched", string(d.Manufacturing.BOM), bom)
				if err == nil && bom != "" && len(comps) == 0 {
					t.Error("no components for a valid BOM")
				}
			})
		}
	}
}
