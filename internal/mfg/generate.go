package mfg

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/muster-iot/muster/internal/fleet"
)

// GenerateOptions describe a manifest for trying Muster out: Count units of
// one model with consecutive serials.
type GenerateOptions struct {
	Model            string
	HardwareRevision string
	Count            int
	// Serials are SerialPrefix and a number from Start, zero-padded to
	// Digits: SN-000001 by default.
	SerialPrefix string
	Start        int
	Digits       int
	Format       Format
	// WithCSR simulates devices that make their own keys: each row gets
	// the CSR of a fresh ECDSA P-256 key, and the key is written to
	// KeyDir/<serial>.key (mode 0600), as it would stay on the device.
	// Without KeyDir the keys are discarded.
	WithCSR bool
	KeyDir  string
}

func (o *GenerateOptions) setDefaults() {
	if o.SerialPrefix == "" {
		o.SerialPrefix = "SN-"
	}
	if o.Start == 0 {
		o.Start = 1
	}
	if o.Digits == 0 {
		o.Digits = 6
	}
	if o.Format == "" {
		o.Format = FormatCSV
	}
}

// Serial returns the serial of unit i (from 0) of a generated manifest.
func (o GenerateOptions) Serial(i int) string {
	o.setDefaults()
	return fmt.Sprintf("%s%0*d", o.SerialPrefix, o.Digits, o.Start+i)
}

// GenerateManifest writes a manifest as o describes, one row per unit, each
// with a passing final QC result.
func GenerateManifest(w io.Writer, o GenerateOptions) error {
	o.setDefaults()
	if err := fleet.ValidName("model", o.Model); err != nil {
		return err
	}
	if o.Count < 1 {
		return errors.New("count must be at least 1")
	}
	if o.KeyDir != "" {
		if err := os.MkdirAll(o.KeyDir, 0o700); err != nil {
			return fmt.Errorf("creating the key directory: %w", err)
		}
	}
	var cw *csv.Writer
	enc := json.NewEncoder(w)
	if o.Format == FormatCSV {
		cw = csv.NewWriter(w)
		if err := cw.Write([]string{"serial", "model", "hardware_revision", "qc.final", "csr"}); err != nil {
			return err
		}
	}
	for i := range o.Count {
		row := Row{Serial: o.Serial(i), Model: o.Model, HardwareRevision: o.HardwareRevision}
		if o.WithCSR {
			csr, err := o.deviceCSR(row.Serial)
			if err != nil {
				return err
			}
			row.CSR = csr
		}
		var err error
		if cw != nil {
			err = cw.Write([]string{row.Serial, row.Model, row.HardwareRevision, "pass", row.CSR})
		} else {
			row.QC = []fleet.QCResult{{Test: "final", Result: "pass"}}
			err = enc.Encode(row)
		}
		if err != nil {
			return fmt.Errorf("writing the manifest: %w", err)
		}
	}
	if cw != nil {
		cw.Flush()
		return cw.Error()
	}
	return nil
}

// deviceCSR makes the key a device would make and returns its CSR.
func (o GenerateOptions) deviceCSR(serial string) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: serial}}, key)
	if err != nil {
		return "", fmt.Errorf("making the CSR of %s: %w", serial, err)
	}
	if o.KeyDir != "" {
		name, err := SerialFileName(serial)
		if err != nil {
			return "", err
		}
		keyPEM, err := KeyPEM(key)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(o.KeyDir, name+".key"), []byte(keyPEM), keyMode); err != nil {
			return "", fmt.Errorf("writing the key of %s: %w", serial, err)
		}
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}
