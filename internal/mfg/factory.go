package mfg

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/muster-iot/muster/internal/fleet"
)

// CA modes say who issues a factory's birth certificates.
const (
	// CAManaged means Muster runs a birth CA for the factory.
	CAManaged = "managed"
	// CAExternal means the factory has its own CA, registered as a trust anchor.
	CAExternal = "external"
)

// Factory is a manufacturing site and the scope its tokens may register in:
// which models, and which serial numbers.
type Factory struct {
	Name   string   `json:"name"`
	Models []string `json:"models"`
	// SerialPattern is a Go (RE2) regular expression that the whole serial
	// must match; it is anchored implicitly, so "SN-[0-9]{6}" rejects
	// "xSN-123456".
	SerialPattern string `json:"serialPattern"`
	CAMode        string `json:"caMode"` // CAManaged or CAExternal

	// serial is the anchored SerialPattern, compiled by NewFactory so that
	// checking a 100,000-row batch does not compile it 100,000 times.
	serial *regexp.Regexp
}

// NewFactory validates f and returns a copy ready for CheckRow, with its
// serial pattern compiled once. An empty CAMode means CAManaged.
func NewFactory(f Factory) (*Factory, error) {
	if f.CAMode == "" {
		f.CAMode = CAManaged
	}
	f.Models = slices.Clone(f.Models)
	if err := f.Validate(); err != nil {
		return nil, err
	}
	re, err := compileSerialPattern(f.SerialPattern)
	if err != nil {
		return nil, err
	}
	f.serial = re
	return &f, nil
}

// Validate checks the factory's name, models, CA mode and serial pattern. A
// failure is a *fleet.FieldError naming the field, so the API can answer
// validation_failed with that field.
func (f *Factory) Validate() error {
	if err := fleet.ValidName("name", f.Name); err != nil {
		return err
	}
	if len(f.Models) == 0 {
		return &fleet.FieldError{Field: "models", Message: "at least one model is required (for example --models M1,M2)"}
	}
	for i, m := range f.Models {
		if err := fleet.ValidName("models", m); err != nil {
			return err
		}
		if slices.Contains(f.Models[:i], m) {
			return &fleet.FieldError{Field: "models", Message: fmt.Sprintf("model %q is listed twice", m)}
		}
	}
	if f.CAMode != CAManaged && f.CAMode != CAExternal {
		return &fleet.FieldError{Field: "caMode", Message: fmt.Sprintf("%q is not one of %s, %s", f.CAMode, CAManaged, CAExternal)}
	}
	_, err := compileSerialPattern(f.SerialPattern)
	return err
}

// CheckRow reports whether a unit of this model and serial is inside the
// factory's scope. It returns a *ScopeError when it is not.
//
// A Factory built with NewFactory uses its compiled pattern; any other
// Factory compiles the pattern on every call, which is correct but slow.
func (f *Factory) CheckRow(model, serial string) error {
	if !slices.Contains(f.Models, model) {
		return &ScopeError{Field: "model", Reason: fmt.Sprintf("model %q is not registered for factory %s (its models: %s); add it with muster factories or fix the row",
			model, f.Name, strings.Join(f.Models, ", "))}
	}
	re := f.serial
	if re == nil {
		var err error
		if re, err = compileSerialPattern(f.SerialPattern); err != nil {
			return fmt.Errorf("factory %s: %w", f.Name, err)
		}
	}
	if !re.MatchString(serial) {
		return &ScopeError{Field: "serial", Reason: fmt.Sprintf("serial %q does not match factory %s's serial pattern %s",
			serial, f.Name, f.SerialPattern)}
	}
	return nil
}

// compileSerialPattern compiles p so that it must match the whole serial.
// Wrapping the source text in ^(?:...)$ is not enough: an unterminated \Q
// would swallow the closing anchor. So the pattern is parsed first and its
// normalised form, in which every quote is closed, is what gets anchored.
func compileSerialPattern(p string) (*regexp.Regexp, error) {
	if strings.TrimSpace(p) == "" {
		return nil, &fleet.FieldError{Field: "serialPattern", Message: "is required: a regular expression the whole serial must match, for example SN-[0-9]{8}"}
	}
	parsed, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return nil, &fleet.FieldError{Field: "serialPattern", Message: fmt.Sprintf("is not a valid Go regular expression: %v", err)}
	}
	re, err := regexp.Compile(`^(?:` + parsed.String() + `)$`)
	if err != nil {
		return nil, &fleet.FieldError{Field: "serialPattern", Message: fmt.Sprintf("is not a valid Go regular expression: %v", err)}
	}
	return re, nil
}

// ScopeError says that a row lies outside its factory's scope: a model the
// factory does not make, or a serial outside its pattern.
type ScopeError struct {
	Field  string // "model" or "serial"
	Reason string
}

func (e *ScopeError) Error() string { return e.Reason }
