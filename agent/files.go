package agent

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files in the credentials directory.
const (
	// CredentialsFile holds the operational key, certificate and CA chain
	// in PEM, in that order: curl --cert and openssl read it as it is.
	CredentialsFile = "credentials.pem"
	// InfoFile holds the last provisioning answer (endpoints,
	// configuration) as JSON.
	InfoFile = "provisioning.json"
	// pendingFile holds the key and CSR of a request still in flight, so
	// a restarted device retries the same request.
	pendingFile = "pending.pem"
)

// writeAtomic replaces dir/name with data: a power cut leaves the old file
// or the new one, never a mix.
func writeAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // makes the rename durable where the OS supports it
		d.Close()
	}
	return nil
}

// save writes the credentials to the directory, when there is one.
func (a *Agent) save(c *Credentials) error {
	if a.cfg.Dir == "" {
		return nil
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return fmt.Errorf("agent: encode key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, cert := range append([]*x509.Certificate{c.Certificate}, c.Chain...) {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
	}
	if err := writeAtomic(a.cfg.Dir, CredentialsFile, data); err != nil {
		return fmt.Errorf("agent: save credentials: %w", err)
	}
	info, _ := json.MarshalIndent(c.Info, "", "  ") // plain data always encodes
	if err := writeAtomic(a.cfg.Dir, InfoFile, append(info, '\n')); err != nil {
		return fmt.Errorf("agent: save provisioning answer: %w", err)
	}
	return nil
}

// Load reads the credentials from the directory. Without a directory, or
// before the first provisioning, it returns fs.ErrNotExist.
func (a *Agent) Load() (*Credentials, error) {
	if a.cfg.Dir == "" {
		return nil, fs.ErrNotExist
	}
	data, err := os.ReadFile(filepath.Join(a.cfg.Dir, CredentialsFile))
	if err != nil {
		return nil, err
	}
	key, _, err := decodeKeyAndCSR(data)
	if err != nil {
		return nil, err
	}
	certs, err := parsePEMCerts(data)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("agent: %s has no certificate: %v", CredentialsFile, err)
	}
	c := &Credentials{DeviceID: certs[0].Subject.CommonName, Certificate: certs[0], Chain: certs[1:], Key: key}
	if info, err := os.ReadFile(filepath.Join(a.cfg.Dir, InfoFile)); err == nil {
		_ = json.Unmarshal(info, &c.Info) // informational; the PEM is what counts
	}
	a.setCredentials(c)
	return c, nil
}

// pending returns the key and CSR of a request in flight of kind, if any.
func (a *Agent) pending(kind string) (crypto.Signer, []byte, bool) {
	if a.cfg.Dir == "" {
		return nil, nil, false
	}
	data, err := os.ReadFile(filepath.Join(a.cfg.Dir, pendingFile+"."+kind))
	if err != nil {
		return nil, nil, false
	}
	key, csr, err := decodeKeyAndCSR(data)
	if err != nil || csr == nil {
		return nil, nil, false
	}
	return key, csr, true
}

// keepPending remembers a request before it is sent.
func (a *Agent) keepPending(kind string, key crypto.Signer, csr []byte) error {
	if a.cfg.Dir == "" {
		return nil
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})...)
	return writeAtomic(a.cfg.Dir, pendingFile+"."+kind, data)
}

func (a *Agent) dropPending(kind string) {
	if a.cfg.Dir != "" {
		_ = os.Remove(filepath.Join(a.cfg.Dir, pendingFile+"."+kind))
	}
}

// decodeKeyAndCSR reads the PRIVATE KEY (and CERTIFICATE REQUEST) blocks
// of a PEM text.
func decodeKeyAndCSR(data []byte) (crypto.Signer, []byte, error) {
	var key crypto.Signer
	var csr []byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("agent: key: %w", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, nil, errors.New("agent: key cannot sign")
			}
			key = s
		case "CERTIFICATE REQUEST":
			csr = block.Bytes
		}
	}
	if key == nil {
		return nil, nil, errors.New("agent: no PRIVATE KEY block")
	}
	return key, csr, nil
}
