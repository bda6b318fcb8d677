package fleet

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// PassportVersion is the version of the Passport document format. It changes
// when a field changes meaning, so archived passports stay readable.
const PassportVersion = "1"

// Passport is a device's whole life in one document, in lifecycle order:
// who it is, how it was built, how it was set up, where it is, what
// happened to it, how it was retired, and the verified history that backs
// every statement. It is what an auditor, a buyer of refurbished hardware or
// a recycler reads; it is derived, never stored.
type Passport struct {
	PassportVersion string `json:"passportVersion"`
	DeviceID        string `json:"deviceId"`
	// DeviceVersion and AsOf say which state of the record the passport shows.
	DeviceVersion int64     `json:"deviceVersion"`
	AsOf          time.Time `json:"asOf"`

	Identity      Identity              `json:"identity"`
	Manufacturing PassportManufacturing `json:"manufacturing"`
	Provisioning  Provisioning          `json:"provisioning"`
	Inventory     Inventory             `json:"inventory"`
	Lifecycle     PassportLifecycle     `json:"lifecycle"`
	Maintenance   []MaintenanceItem     `json:"maintenance"`
	Compliance    []ComplianceItem      `json:"compliance"`
	EndOfLife     EndOfLife             `json:"endOfLife"`
	Attributes    map[string]string     `json:"attributes"`
	History       PassportHistory       `json:"history"`
}

// PassportManufacturing summarises how the unit was built. The BOM is
// reduced to its components; the CycloneDX document itself stays on the
// device record.
type PassportManufacturing struct {
	BOM      BOMSummary     `json:"bom"`
	QC       []QCResult     `json:"qc"`
	QCPassed int            `json:"qcPassed"`
	QCFailed int            `json:"qcFailed"`
	Assembly []AssemblyStep `json:"assembly"`
}

// BOMSummary is the bill of materials as a passport shows it.
type BOMSummary struct {
	Present    bool           `json:"present"`
	Count      int            `json:"count"`
	ByType     map[string]int `json:"byType"`
	Components []Component    `json:"components"`
	// Error is set when a stored BOM no longer parses; the passport still
	// renders so the rest of the record is not hidden by one bad field.
	Error string `json:"error,omitempty"`
}

// PassportLifecycle is the state timeline from registration on.
type PassportLifecycle struct {
	RegisteredAt   time.Time     `json:"registeredAt"`
	State          State         `json:"state"`
	StateChangedAt time.Time     `json:"stateChangedAt"`
	Timeline       []StateChange `json:"timeline"`
}

// PassportHistory is the full hash-chained history and whether it verifies.
type PassportHistory struct {
	Verified bool        `json:"verified"`
	Events   int         `json:"events"`
	Break    *ChainBreak `json:"break,omitempty"`
	// Head is the hash of the last event: quoting it pins the whole chain.
	Head  string  `json:"head,omitempty"`
	Items []Event `json:"items"`
}

// BuildPassport assembles the passport of d from its record and its history,
// given in chain order. It verifies the chain itself rather than taking a
// verdict from the caller, so a passport can never claim a verification that
// did not happen.
func BuildPassport(d *Device, events []Event) Passport {
	brk := VerifyChain(events)
	p := Passport{
		PassportVersion: PassportVersion,
		DeviceID:        d.ID,
		DeviceVersion:   d.Version,
		AsOf:            d.UpdatedAt,
		Identity:        d.Identity,
		Manufacturing: PassportManufacturing{
			BOM:      summariseBOM(d.Manufacturing.BOM),
			QC:       orEmpty(d.Manufacturing.QC),
			Assembly: orEmpty(d.Manufacturing.Assembly),
		},
		Provisioning: d.Provisioning,
		Inventory:    d.Inventory,
		Lifecycle: PassportLifecycle{
			RegisteredAt:   d.CreatedAt,
			State:          d.Lifecycle.State,
			StateChangedAt: d.Lifecycle.StateChangedAt,
			Timeline:       orEmpty(d.Lifecycle.Changes),
		},
		Maintenance: orEmpty(d.Maintenance),
		Compliance:  orEmpty(d.Compliance),
		EndOfLife:   d.EndOfLife,
		Attributes:  d.Attributes,
		History: PassportHistory{
			Verified: brk == nil,
			Events:   len(events),
			Break:    brk,
			Items:    orEmpty(events),
		},
	}
	if p.Attributes == nil {
		p.Attributes = map[string]string{}
	}
	p.Provisioning.Firmware = orEmpty(p.Provisioning.Firmware)
	p.Provisioning.Tests = orEmpty(p.Provisioning.Tests)
	p.Inventory.Groups = orEmpty(p.Inventory.Groups)
	p.Inventory.Tags = orEmpty(p.Inventory.Tags)
	for _, q := range d.Manufacturing.QC {
		switch strings.ToLower(q.Result) {
		case "pass", "passed":
			p.Manufacturing.QCPassed++
		case "fail", "failed":
			p.Manufacturing.QCFailed++
		}
	}
	if n := len(events); n > 0 {
		p.History.Head = events[n-1].Hash
	}
	return p
}

func summariseBOM(raw []byte) BOMSummary {
	s := BOMSummary{ByType: map[string]int{}, Components: []Component{}}
	if len(raw) == 0 {
		return s
	}
	s.Present = true
	cs, err := ParseBOM(raw)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.Count = len(cs)
	s.Components = cs
	for _, c := range cs {
		s.ByType[c.Type]++
	}
	return s
}

// orEmpty keeps JSON lists as [] rather than null, so consumers need not
// tell "none" from "unknown".
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Markdown renders the passport as a readable document, sections in the
// order a device lives them. Every value that came from a user is escaped,
// so a serial or a note cannot break the layout or inject markup.
func (p Passport) Markdown() string {
	var b mdBuilder
	b.heading(1, "Device passport: "+esc(p.Identity.Model+" "+p.Identity.Serial))
	b.para("Device %s, record version %d as of %s. Passport format %s.",
		code(p.DeviceID), p.DeviceVersion, ts(p.AsOf), p.PassportVersion)
	if p.History.Verified {
		b.para("History: **verified**, %d events, head %s.", p.History.Events, code(p.History.Head))
	} else {
		b.para("History: **NOT VERIFIED**: broken at event %d (%s).", p.History.Break.Seq, esc(p.History.Break.Reason))
	}

	b.section("1. Identity")
	b.kvs(kv("Serial", p.Identity.Serial), kv("Model", p.Identity.Model), kv("Hardware revision", p.Identity.HardwareRevision),
		kv("Factory", p.Identity.Factory), kv("Batch", p.Identity.Batch))

	b.section("2. Manufacturing")
	m := p.Manufacturing
	b.sub("Bill of materials")
	switch {
	case !m.BOM.Present:
		b.para("No bill of materials recorded.")
	case m.BOM.Error != "":
		b.para("The stored bill of materials does not parse: %s", esc(m.BOM.Error))
	default:
		b.para("%d components (%s).", m.BOM.Count, byType(m.BOM.ByType))
		b.table([]string{"Type", "Group", "Name", "Version", "PURL"}, len(m.BOM.Components), func(i int) []string {
			c := m.BOM.Components[i]
			return []string{c.Type, c.Group, c.Name, c.Version, c.PURL}
		})
	}
	b.sub("Quality control")
	b.para("%d results: %d passed, %d failed.", len(m.QC), m.QCPassed, m.QCFailed)
	b.table([]string{"At", "Test", "Result", "Station", "Measurements"}, len(m.QC), func(i int) []string {
		q := m.QC[i]
		return []string{ts(q.At), q.Test, q.Result, q.Station, measurements(q.Measurements)}
	})
	b.sub("Assembly")
	b.table([]string{"At", "Step", "Station", "Operator"}, len(m.Assembly), func(i int) []string {
		a := m.Assembly[i]
		return []string{ts(a.At), a.Step, a.Station, a.Operator}
	})

	b.section("3. Provisioning")
	pr := p.Provisioning
	b.sub("Firmware")
	b.table([]string{"Component", "Version", "SBOM", "Installed"}, len(pr.Firmware), func(i int) []string {
		f := pr.Firmware[i]
		return []string{f.Component, f.Version, f.SBOMRef, ts(f.InstalledAt)}
	})
	b.sub("Network")
	b.kvs(kv("Hostname", pr.Network.Hostname), kv("MAC", pr.Network.MAC),
		kv("IP addresses", strings.Join(pr.Network.IPAddresses, ", ")), kv("Settings", pairs(pr.Network.Settings)))
	b.sub("Security")
	b.kvs(kv("Key type", pr.Security.KeyType), kv("Key storage", pr.Security.KeyStorage),
		kv("Secure boot", yesNo(pr.Security.SecureBoot)), kv("Measures", strings.Join(pr.Security.Measures, ", ")))
	b.sub("Registration")
	b.kvs(kv("System", pr.Registration.System), kv("External id", pr.Registration.ExternalID),
		kv("Registered", ts(pr.Registration.RegisteredAt)), kv("Data", pairs(pr.Registration.Data)))
	b.sub("Tests")
	b.table([]string{"At", "Test", "Result", "Detail"}, len(pr.Tests), func(i int) []string {
		t := pr.Tests[i]
		return []string{ts(t.At), t.Test, t.Result, t.Detail}
	})

	b.section("4. Inventory")
	inv := p.Inventory
	coords := ""
	if inv.Location.Lat != nil && inv.Location.Lon != nil {
		coords = fmt.Sprintf("%.6f, %.6f", *inv.Location.Lat, *inv.Location.Lon)
	}
	b.kvs(kv("Owner", inv.Owner), kv("Site", inv.Location.Site), kv("Coordinates", coords),
		kv("Groups", strings.Join(inv.Groups, ", ")), kv("Tags", strings.Join(inv.Tags, ", ")))

	b.section("5. Lifecycle")
	b.kvs(kv("Registered", ts(p.Lifecycle.RegisteredAt)), kv("Current state", string(p.Lifecycle.State)),
		kv("Since", ts(p.Lifecycle.StateChangedAt)))
	b.table([]string{"At", "From", "To", "Actor", "Reason"}, len(p.Lifecycle.Timeline), func(i int) []string {
		c := p.Lifecycle.Timeline[i]
		return []string{ts(c.At), string(c.From), string(c.To), c.Actor, c.Reason}
	})

	b.section("6. Maintenance")
	b.table([]string{"At", "Problem", "Diagnosis", "Action", "Outcome", "Technician"}, len(p.Maintenance), func(i int) []string {
		x := p.Maintenance[i]
		return []string{ts(x.At), x.Problem, x.Diagnosis, x.Action, x.Outcome, x.Technician}
	})

	b.section("7. Compliance")
	b.table([]string{"Standard", "Control", "Status", "Evidence", "Checked"}, len(p.Compliance), func(i int) []string {
		c := p.Compliance[i]
		return []string{c.Standard, c.Control, c.Status, c.Evidence, ts(c.CheckedAt)}
	})

	b.section("8. End of life")
	eol := p.EndOfLife
	if eol.DecommissionedAt == nil && eol.Wipe == nil && eol.Disposal == nil {
		b.para("In service: not decommissioned.")
	} else {
		var decommissioned, wipe, wipeEvidence, disposal, facility, certificate string
		if eol.DecommissionedAt != nil {
			decommissioned = ts(*eol.DecommissionedAt)
		}
		if w := eol.Wipe; w != nil {
			wipe = fmt.Sprintf("%s by %s at %s", w.Method, w.By, ts(w.At))
			wipeEvidence = w.Evidence
		}
		if d := eol.Disposal; d != nil {
			disposal = fmt.Sprintf("%s at %s", d.Method, ts(d.At))
			facility, certificate = d.Facility, d.Certificate
		}
		b.kvs(kv("Decommissioned", decommissioned), kv("Reason", eol.DecommissionReason), kv("Data wipe", wipe),
			kv("Wipe evidence", wipeEvidence), kv("Disposal", disposal), kv("Facility", facility), kv("Certificate", certificate))
	}

	b.section("9. Attributes")
	keys := slices.Sorted(maps.Keys(p.Attributes))
	b.table([]string{"Key", "Value"}, len(keys), func(i int) []string {
		return []string{keys[i], p.Attributes[keys[i]]}
	})

	b.section("10. History")
	if p.History.Verified {
		b.para("Verification: OK, %d events chained by SHA-256.", p.History.Events)
	} else {
		b.para("Verification: FAILED at event %d: %s. Events from %d on cannot be trusted.",
			p.History.Break.Seq, esc(p.History.Break.Reason), p.History.Break.Seq)
	}
	b.table([]string{"Seq", "At", "Type", "Actor", "Hash"}, len(p.History.Items), func(i int) []string {
		e := p.History.Items[i]
		return []string{fmt.Sprint(e.Seq), ts(e.At), e.Type, e.Actor, e.Hash}
	})
	return b.String()
}

// kv is one "key: value" item for mdBuilder.kvs.
func kv(key, value string) [2]string { return [2]string{key, value} }

// mdBuilder writes Markdown blocks separated by exactly one blank line,
// which CommonMark needs to tell a table from the list item before it.
type mdBuilder struct {
	strings.Builder
	inList bool // the last line written was a list item
}

// endList closes a list with the blank line that separates blocks.
func (b *mdBuilder) endList() {
	if b.inList {
		b.WriteString("\n")
		b.inList = false
	}
}

// para writes one paragraph.
func (b *mdBuilder) para(format string, args ...any) {
	b.endList()
	fmt.Fprintf(b, format, args...)
	b.WriteString("\n\n")
}

func (b *mdBuilder) heading(level int, title string) {
	b.endList()
	b.WriteString(strings.Repeat("#", level) + " " + title + "\n\n")
}

func (b *mdBuilder) section(title string) { b.heading(2, title) }
func (b *mdBuilder) sub(title string)     { b.heading(3, title) }

// kvs writes "- **Key:** value" items for the non-empty values, so a
// section lists only what is known, or says that nothing is.
func (b *mdBuilder) kvs(pairs ...[2]string) {
	wrote := false
	for _, p := range pairs {
		if p[1] != "" {
			fmt.Fprintf(b, "- **%s:** %s\n", p[0], esc(p[1]))
			b.inList, wrote = true, true
		}
	}
	if !wrote {
		b.para("None recorded.")
	}
}

// table writes a Markdown table with n rows, or "None recorded." for none.
func (b *mdBuilder) table(head []string, n int, row func(i int) []string) {
	if n == 0 {
		b.para("None recorded.")
		return
	}
	b.endList()
	b.WriteString("| " + strings.Join(head, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(head)) + "\n")
	for i := range n {
		cells := row(i)
		for j := range cells {
			cells[j] = esc(cells[j])
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\n")
}

// String returns the document, ending in exactly one newline.
func (b *mdBuilder) String() string {
	return strings.TrimRight(b.Builder.String(), "\n") + "\n"
}

// code renders a value as a code span. Escapes do not work inside code
// spans, so backticks and line breaks are dropped instead.
func code(s string) string {
	return "`" + strings.NewReplacer("`", "", "\n", " ", "\r", " ").Replace(s) + "`"
}

// mdEscaper neutralises the characters that would end a table cell, start
// markup or embed HTML; line breaks become spaces so a row stays one line.
var mdEscaper = strings.NewReplacer(
	"\\", "\\\\", "|", "\\|", "*", "\\*", "_", "\\_", "`", "\\`", "[", "\\[", "]", "\\]",
	"<", "&lt;", ">", "&gt;", "#", "\\#", "\r\n", " ", "\n", " ", "\r", " ",
)

func esc(s string) string { return mdEscaper.Replace(s) }

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// joinSorted renders a map as "k=v, ..." in key order, so the same record
// always renders the same text.
func joinSorted[V any](m map[string]V, format func(k string, v V) string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, format(k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func pairs(m map[string]string) string {
	return joinSorted(m, func(k, v string) string { return k + "=" + v })
}

func measurements(m map[string]float64) string {
	return joinSorted(m, func(k string, v float64) string { return fmt.Sprintf("%s=%g", k, v) })
}

func byType(m map[string]int) string {
	return joinSorted(m, func(k string, n int) string { return fmt.Sprintf("%d %s", n, k) })
}
