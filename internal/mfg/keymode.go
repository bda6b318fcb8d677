package mfg

import (
	"fmt"
	"strings"
)

// KeyMode says where a batch's birth identities come from.
type KeyMode string

// The key modes.
const (
	// KeyModeCSR: each device made its own key; its row carries a CSR and
	// Muster's manufacturing CA signs a birth certificate for it. The
	// preferred mode: private keys never leave the devices.
	KeyModeCSR KeyMode = "csr"
	// KeyModeMint: Muster generates each key and certificate and returns
	// the key once, never storing it. For test lines and simulation.
	KeyModeMint KeyMode = "mint"
	// KeyModeRegister: the maker's own CA (registered for an external
	// factory) issued the birth certificates; rows carry them and Muster
	// registers them after checking them against that CA.
	KeyModeRegister KeyMode = "register"
)

// ParseKeyMode returns the key mode named s.
func ParseKeyMode(s string) (KeyMode, error) {
	switch m := KeyMode(strings.ToLower(strings.TrimSpace(s))); m {
	case KeyModeCSR, KeyModeMint, KeyModeRegister:
		return m, nil
	}
	return "", fmt.Errorf("unknown key mode %q: want csr, mint or register", s)
}

// DefaultKeyMode is the key mode of a factory's batches when none is given:
// register for an external CA, csr otherwise.
func DefaultKeyMode(caMode string) KeyMode {
	if caMode == CAExternal {
		return KeyModeRegister
	}
	return KeyModeCSR
}

// CheckKeyMode reports whether a factory with the given CA mode can take a
// batch in key mode m: Muster can only sign for factories whose CA it runs,
// and only registers certificates for factories with their own CA.
func CheckKeyMode(caMode string, m KeyMode) error {
	external := caMode == CAExternal
	if external != (m == KeyModeRegister) {
		if external {
			return fmt.Errorf("the factory has its own CA: submit its devices' birth certificates (key mode register), Muster cannot sign for it")
		}
		return fmt.Errorf("key mode register is for factories with their own CA; this factory's birth certificates come from Muster (key mode csr or mint)")
	}
	return nil
}
