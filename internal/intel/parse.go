package intel

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Formats Parse reads.
const (
	FormatAuto = "auto"
	FormatList = "list"
	FormatSTIX = "stix"
)

// Parsed is what Parse found.
type Parsed struct {
	Indicators []Indicator `json:"indicators"`
	// Skipped explains what was left out: STIX indicators whose patterns
	// name no address or domain, revoked or expired ones.
	Skipped []string `json:"skipped,omitempty"`
}

// MaxSkipped bounds Parsed.Skipped; the count past it is summarised.
const MaxSkipped = 20

// Parse reads a feed: a list (one IP, CIDR range or domain per line; '#'
// starts a comment; commas and whitespace also separate values) or a STIX
// 2.1 bundle of indicator objects. FormatAuto picks STIX when the data is a
// JSON object. now decides which STIX indicators have expired.
func Parse(data []byte, format string, now time.Time) (*Parsed, error) {
	if format == "" || format == FormatAuto {
		format = FormatList
		if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
			format = FormatSTIX
		}
	}
	var p *Parsed
	var err error
	switch format {
	case FormatList:
		p, err = parseList(data)
	case FormatSTIX:
		p, err = parseSTIX(data, now)
	default:
		return nil, fmt.Errorf("intel: format %q: use list, stix or auto", format)
	}
	if err != nil {
		return nil, err
	}
	if len(p.Indicators) == 0 {
		return nil, ErrEmpty
	}
	p.Indicators = dedup(p.Indicators)
	return p, nil
}

func dedup(in []Indicator) []Indicator {
	seen := make(map[[2]string]bool, len(in))
	out := in[:0]
	for _, i := range in {
		k := [2]string{i.Type, i.Value}
		if !seen[k] {
			seen[k] = true
			out = append(out, i)
		}
	}
	return out
}

func parseList(data []byte) (*Parsed, error) {
	p := &Parsed{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == ';' }) {
			ind, err := ParseValue(f)
			if err != nil {
				return nil, fmt.Errorf("intel: line %d: %w", line, err)
			}
			p.Indicators = append(p.Indicators, ind)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("intel: read list: %w", err)
	}
	return p, nil
}

// stixObject is the part of a STIX 2.1 object Muster reads.
type stixObject struct {
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Pattern     string          `json:"pattern"`
	PatternType string          `json:"pattern_type"`
	ValidUntil  *time.Time      `json:"valid_until"`
	Revoked     bool            `json:"revoked"`
	Objects     json.RawMessage `json:"objects"`
}

// comparison matches one STIX comparison expression on an address or
// domain value: [ipv4-addr:value = '198.51.100.7'] or
// [ipv4-addr:value ISSUBSET '198.51.100.0/24'].
var comparison = regexp.MustCompile(`(ipv4-addr|ipv6-addr|domain-name):value\s*(=|ISSUBSET)\s*'((?:[^'\\]|\\.)*)'`)

// unsupported are pattern constructs that make a pattern mean more than
// "any of these values": Muster matches single addresses, so it skips such
// patterns rather than match them too broadly.
var unsupported = regexp.MustCompile(`\b(AND|FOLLOWEDBY|NOT|WITHIN|REPEATS|START)\b|!=|<|>|\bLIKE\b|\bMATCHES\b|\bIN\b`)

func parseSTIX(data []byte, now time.Time) (*Parsed, error) {
	var top stixObject
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("intel: not a STIX 2.1 bundle: %w", err)
	}
	var objs []stixObject
	switch top.Type {
	case "bundle":
		if err := json.Unmarshal(top.Objects, &objs); err != nil {
			return nil, fmt.Errorf("intel: STIX bundle objects: %w", err)
		}
	case "indicator":
		objs = []stixObject{top}
	default:
		return nil, fmt.Errorf("intel: STIX object of type %q: want a bundle or an indicator", top.Type)
	}
	p := &Parsed{}
	skipped := 0
	skip := func(id, why string) {
		skipped++
		if len(p.Skipped) < MaxSkipped {
			p.Skipped = append(p.Skipped, id+": "+why)
		}
	}
	for _, o := range objs {
		if o.Type != "indicator" {
			continue
		}
		switch {
		case o.PatternType != "" && o.PatternType != "stix":
			skip(o.ID, "pattern_type "+o.PatternType+" is not stix")
			continue
		case o.Revoked:
			skip(o.ID, "revoked")
			continue
		case o.ValidUntil != nil && !o.ValidUntil.After(now):
			skip(o.ID, "expired "+o.ValidUntil.UTC().Format(time.RFC3339))
			continue
		}
		rest := comparison.ReplaceAllString(o.Pattern, "")
		if unsupported.MatchString(rest) {
			skip(o.ID, "pattern combines observations in ways Muster does not match (AND, FOLLOWEDBY, qualifiers, other operators)")
			continue
		}
		ms := comparison.FindAllStringSubmatch(o.Pattern, -1)
		if len(ms) == 0 {
			skip(o.ID, "pattern names no ipv4-addr, ipv6-addr or domain-name value")
			continue
		}
		name := o.Name
		if name == "" {
			name = o.ID
		}
		for _, m := range ms {
			v := strings.ReplaceAll(strings.ReplaceAll(m[3], `\'`, `'`), `\\`, `\`)
			ind, err := ParseValue(v)
			if err != nil || (m[1] == "domain-name") != (ind.Type == TypeDomain) {
				skip(o.ID, fmt.Sprintf("value %q does not fit %s", v, m[1]))
				continue
			}
			ind.Name = name
			p.Indicators = append(p.Indicators, ind)
		}
	}
	if skipped > len(p.Skipped) {
		p.Skipped = append(p.Skipped, fmt.Sprintf("… and %d more", skipped-len(p.Skipped)))
	}
	return p, nil
}
