package pki

import (
	"bytes"
	"fmt"
	"os"
)

// PassphraseEnv is the environment variable conventionally holding the CA
// key passphrase. Error messages name it so operators know where to look.
const PassphraseEnv = "MUSTER_CA_PASSPHRASE"

// PassphraseFromEnvOrFile returns the CA key passphrase from the
// environment variable envName or from file. Exactly one of them must be
// set: if both are, it is unclear which one the operator meant. One
// trailing newline is removed from the file, since editors add one.
func PassphraseFromEnvOrFile(envName, file string) ([]byte, error) {
	env := ""
	if envName != "" {
		env = os.Getenv(envName)
	}
	switch {
	case env != "" && file != "":
		return nil, fmt.Errorf("pki: CA passphrase given both in %s and in file %s: set only one", envName, file)
	case env != "":
		return []byte(env), nil
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("pki: read CA passphrase file: %w", err)
		}
		data = bytes.TrimSuffix(data, []byte("\n"))
		data = bytes.TrimSuffix(data, []byte("\r"))
		if len(data) == 0 {
			return nil, fmt.Errorf("pki: CA passphrase file %s is empty", file)
		}
		return data, nil
	case envName != "":
		return nil, fmt.Errorf("pki: no CA passphrase: set %s or give a passphrase file", envName)
	default:
		return nil, fmt.Errorf("pki: no CA passphrase: give a passphrase file")
	}
}
