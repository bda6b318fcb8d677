package gateway

import "strings"

// Role is what a connected identity may do on the broker.
type Role int

// Roles, from least to most privileged. The zero Role may do nothing, so a
// session whose principal was never set is denied everything.
const (
	RoleNone Role = iota
	// RoleBirth is a device holding only its birth certificate: it may
	// only provision.
	RoleBirth
	// RoleQuarantined is an operational device in quarantine: it may only
	// use devices/{id}/quarantine/#.
	RoleQuarantined
	// RoleOperational is a provisioned device: its own devices/{id}/#,
	// plus the broadcast topics of its groups, subscribe only.
	RoleOperational
)

func (r Role) String() string {
	switch r {
	case RoleBirth:
		return "birth"
	case RoleQuarantined:
		return "quarantined"
	case RoleOperational:
		return "operational"
	}
	return "none"
}

// Action is what a client wants to do with a topic.
type Action int

// Actions.
const (
	Publish Action = iota + 1
	Subscribe
)

// Principal is whom the topic policy judges: a role and the names it is
// scoped to.
type Principal struct {
	Role Role
	// DeviceID is the device's id, for operational and quarantined roles.
	DeviceID string
	// Groups are the device's groups; each grants subscribe-only access
	// to fleet/{group}/#.
	Groups []string
}

// Topic roots of the policy.
const (
	devicesRoot   = "devices"
	broadcastRoot = "fleet"
	provisionRoot = "$muster/provision"
)

// Allowed reports whether p may perform a on topic. For Subscribe, topic is
// a topic filter and may hold wildcards; for Publish it is a topic name and
// may not. The policy is an allow list over literal prefixes: a filter is
// allowed only when the levels that decide whose topic it is are literal, so
// no wildcard can reach another device. Topics with empty levels, "." or
// ".." levels, or bytes outside printable ASCII are refused outright, so
// look-alike identifiers and path tricks never match anything.
func Allowed(p Principal, topic string, a Action) bool {
	levels, ok := parseTopic(topic, a)
	if !ok {
		return false
	}
	switch p.Role {
	case RoleBirth:
		return birthAllowed(levels, a)
	case RoleQuarantined:
		return safeID(p.DeviceID) && hasLiteralPrefix(levels, devicesRoot, p.DeviceID, "quarantine") && len(levels) > 3
	case RoleOperational:
		if !safeID(p.DeviceID) {
			return false
		}
		if hasLiteralPrefix(levels, devicesRoot, p.DeviceID) && len(levels) > 2 {
			return true
		}
		if a != Subscribe {
			return false
		}
		for _, g := range p.Groups {
			if safeID(g) && hasLiteralPrefix(levels, broadcastRoot, g) && len(levels) > 2 {
				return true
			}
		}
	}
	return false
}

// birthAllowed admits exactly $muster/provision/{template}/request for
// publishing and .../accepted or .../rejected for subscribing, all literal.
// Responses are addressed to one client by the provisioning adapter; the
// exact-filter rule keeps a birth device from even asking for others'.
func birthAllowed(levels []string, a Action) bool {
	if len(levels) != 4 || levels[0] != "$muster" || levels[1] != "provision" || !literal(levels[2]) {
		return false
	}
	switch a {
	case Publish:
		return levels[3] == "request"
	case Subscribe:
		return levels[3] == "accepted" || levels[3] == "rejected"
	}
	return false
}

// hasLiteralPrefix reports whether levels begin with prefix, level by
// level, with no wildcard standing in for any of them.
func hasLiteralPrefix(levels []string, prefix ...string) bool {
	if len(levels) < len(prefix) {
		return false
	}
	for i, want := range prefix {
		if levels[i] != want {
			return false
		}
	}
	return true
}

// literal reports whether a level is neither wildcard.
func literal(level string) bool { return level != "+" && level != "#" }

// parseTopic splits a topic name or filter into levels and checks it: at
// most maxTopicLevels non-empty levels of printable ASCII, no "." or ".."
// level, no $-topic other than the provisioning ones, wildcards only as
// whole levels ('#' last) and only in subscriptions.
func parseTopic(topic string, a Action) ([]string, bool) {
	if topic == "" || len(topic) > maxTopicBytes {
		return nil, false
	}
	for i := 0; i < len(topic); i++ {
		if c := topic[i]; c < 0x21 || c > 0x7e {
			return nil, false
		}
	}
	if strings.HasPrefix(topic, "$") && !strings.HasPrefix(topic, provisionRoot+"/") {
		return nil, false // $SYS, $share and anything else the broker means
	}
	levels := strings.Split(topic, "/")
	if len(levels) > maxTopicLevels {
		return nil, false
	}
	for i, l := range levels {
		switch {
		case l == "", l == ".", l == "..":
			return nil, false
		case l == "+" || l == "#":
			if a != Subscribe || (l == "#" && i != len(levels)-1) {
				return nil, false
			}
		case strings.ContainsAny(l, "+#"):
			return nil, false
		}
	}
	return levels, true
}

// Topic limits. Generous for devices, small enough that matching stays cheap.
const (
	maxTopicBytes  = 512
	maxTopicLevels = 16
)

// safeID reports whether s may name a device or group inside a topic: a
// non-empty single level of letters, digits, '-', '_' and '.', and not "."
// or "..". Anything else (non-ASCII look-alikes, '/', wildcards, '$') could
// make a topic match more than the one device it names.
func safeID(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
