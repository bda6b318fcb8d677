package revocation

import (
	"fmt"
	"strings"
)

// RFC 5280 CRLReason codes Muster revokes with. certificateHold (6) is left
// out on purpose: a Muster revocation is final, and a device whose
// certificate was revoked by mistake is re-provisioned, not un-revoked.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonPrivilegeWithdrawn   = 9
)

// reasonNames pairs each code with the name RFC 5280 gives it (camel case,
// as openssl prints them), in code order.
var reasonNames = [...]struct {
	code int
	name string
}{
	{ReasonUnspecified, "unspecified"},
	{ReasonKeyCompromise, "keyCompromise"},
	{ReasonCACompromise, "caCompromise"},
	{ReasonAffiliationChanged, "affiliationChanged"},
	{ReasonSuperseded, "superseded"},
	{ReasonCessationOfOperation, "cessationOfOperation"},
	{ReasonPrivilegeWithdrawn, "privilegeWithdrawn"},
}

// ReasonNames lists the reason names ParseReason accepts, in code order.
func ReasonNames() []string {
	out := make([]string, len(reasonNames))
	for i, r := range reasonNames {
		out[i] = r.name
	}
	return out
}

// ParseReason returns the code of a reason name, ignoring case, so that
// "keyCompromise", "keycompromise" and RFC 5280's own "cACompromise" all
// work. An empty name is unspecified.
func ParseReason(name string) (int, error) {
	if name == "" {
		return ReasonUnspecified, nil
	}
	for _, r := range reasonNames {
		if strings.EqualFold(r.name, name) {
			return r.code, nil
		}
	}
	return 0, fmt.Errorf("unknown revocation reason %q: use one of %s", name, strings.Join(ReasonNames(), ", "))
}

// ReasonName returns the name of a reason code, or the code as a number
// when Muster has no name for it.
func ReasonName(code int) string {
	for _, r := range reasonNames {
		if r.code == code {
			return r.name
		}
	}
	return fmt.Sprintf("reason-%d", code)
}
