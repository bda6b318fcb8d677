package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

// The PKI listener (CRLs, OCSP) as the data directory records it.
const (
	pkiAddrFile   = "pki.addr"
	defaultPKIURL = "http://127.0.0.1:8080"
)

func newCertsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "certs",
		Aliases: []string{"cert", "certificates"},
		Short:   "List and revoke device certificates, download CRLs",
		Long: `List a device's certificates, revoke one certificate or all of a device's,
and download a CA's CRL. A revocation is recorded in the device's history and
refused on new device connections within a second, on every node.

Reasons: ` + strings.Join(client.Reasons(), ", "),
	}
	cmd.AddCommand(newCertsListCmd(g), newCertsShowCmd(g), newCertsRevokeCmd(g), newCertsCRLCmd(g))
	return cmd
}

func newCertsListCmd(g *globals) *cobra.Command {
	var device string
	cmd := &cobra.Command{
		Use:     "list --device ID",
		Short:   "List a device's certificates, revoked ones included",
		Example: `  muster certs list --device dev_01j9...`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			certs, err := c.DeviceCertificates(cmd.Context(), device)
			if err != nil {
				return err
			}
			return printCertificates(g.printer(cmd), certs)
		},
	}
	cmd.Flags().StringVar(&device, "device", "", "device id (required)")
	markRequired(cmd, "device")
	return cmd
}

func newCertsShowCmd(g *globals) *cobra.Command {
	var caID, serial string
	cmd := &cobra.Command{
		Use:     "show --ca CAID --serial SERIAL",
		Short:   "Show one certificate and whether it is revoked",
		Example: `  muster certs show --ca ca_01j9... --serial 4f1c...`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			cert, err := c.Certificate(cmd.Context(), caID, serial)
			if err != nil {
				return err
			}
			return g.printer(cmd).print(cert, func(t *table) {
				t.row("CA", cert.CAID)
				t.row("Serial", cert.Serial)
				t.row("Device", cert.DeviceID)
				t.row("Kind", cert.Kind)
				t.row("Valid from", timestamp(cert.NotBefore))
				t.row("Valid until", timestamp(cert.NotAfter))
				t.row("Revoked", optionalTime(cert.RevokedAt))
				t.row("Reason", cert.RevokeReasonName)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&caID, "ca", "", "id of the issuing CA (required)")
	f.StringVar(&serial, "serial", "", "serial number in hex, as openssl prints it or not (required)")
	markRequired(cmd, "ca", "serial")
	return cmd
}

func newCertsRevokeCmd(g *globals) *cobra.Command {
	var device, caID, serial, reason string
	cmd := &cobra.Command{
		Use:   "revoke (--device ID | --ca CAID --serial SERIAL) --reason REASON",
		Short: "Revoke all of a device's certificates, or one certificate",
		Example: `  muster certs revoke --device dev_01j9... --reason keyCompromise
  muster certs revoke --ca ca_01j9... --serial 4f1c... --reason superseded`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.newClient(cmd)
			if err != nil {
				return err
			}
			p := g.printer(cmd)
			if device != "" {
				res, err := c.RevokeDeviceCertificates(cmd.Context(), device, reason)
				if err != nil {
					return err
				}
				if p.json {
					return writeJSON(p.w, res)
				}
				fmt.Fprintf(p.w, "Revoked %d certificate(s) of device %s.\n", res.Revoked, device)
				return printCertificates(p, res.Items)
			}
			cert, err := c.RevokeCertificate(cmd.Context(), caID, serial, reason)
			if err != nil {
				return err
			}
			return p.print(cert, func(t *table) {
				fmt.Fprintf(t.tw, "Certificate %s of CA %s (device %s) is revoked since %s, reason %s.\n",
					cert.Serial, cert.CAID, cert.DeviceID, optionalTime(cert.RevokedAt), cert.RevokeReasonName)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&device, "device", "", "revoke every certificate of this device")
	f.StringVar(&caID, "ca", "", "id of the CA that issued the certificate to revoke")
	f.StringVar(&serial, "serial", "", "serial number (hex) of the certificate to revoke")
	f.StringVar(&reason, "reason", "", "why: one of "+strings.Join(client.Reasons(), ", ")+" (required)")
	markRequired(cmd, "reason")
	cmd.MarkFlagsOneRequired("device", "ca")
	cmd.MarkFlagsMutuallyExclusive("device", "ca")
	cmd.MarkFlagsMutuallyExclusive("device", "serial")
	cmd.MarkFlagsRequiredTogether("ca", "serial")
	_ = cmd.RegisterFlagCompletionFunc("reason", cobra.FixedCompletions(client.Reasons(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// crlSummary is what certs crl reports about the CRL it wrote.
type crlSummary struct {
	CAID       string    `json:"caId"`
	Number     string    `json:"number"`
	ThisUpdate time.Time `json:"thisUpdate"`
	NextUpdate time.Time `json:"nextUpdate"`
	Revoked    int       `json:"revoked"`
	File       string    `json:"file"`
}

func newCertsCRLCmd(g *globals) *cobra.Command {
	var caID, out, pkiURL string
	cmd := &cobra.Command{
		Use:   "crl --ca CAID --out FILE",
		Short: "Download a CA's current CRL (DER)",
		Long: `Download a CA's current CRL, DER-encoded, from the server's PKI address
(--pki-url, env MUSTER_PKI_URL; default: http:// + <data-dir>/pki.addr, else
` + defaultPKIURL + `). Read it with: openssl crl -inform DER -in FILE -noout -text`,
		Example: `  muster certs crl --ca ca_01j9... --out factory.crl`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pkiURL == "" {
				pkiURL = os.Getenv("MUSTER_PKI_URL")
			}
			u, err := resolveURL(pkiURL, g.setting("data-dir", "MUSTER_DATA_DIR"), pkiAddrFile, "http", defaultPKIURL)
			if err != nil {
				return err
			}
			c, err := client.New(u, client.WithUserAgent("muster-cli/1"))
			if err != nil {
				return err
			}
			der, err := c.CRL(cmd.Context(), caID)
			if err != nil {
				return err
			}
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				return fmt.Errorf("the server at %s did not send a CRL: %w", u, err)
			}
			if out == "-" {
				_, err := cmd.OutOrStdout().Write(der)
				return err
			}
			if err := os.WriteFile(out, der, 0o644); err != nil {
				return err
			}
			sum := crlSummary{CAID: caID, Number: crl.Number.String(), ThisUpdate: crl.ThisUpdate, NextUpdate: crl.NextUpdate,
				Revoked: len(crl.RevokedCertificateEntries), File: out}
			return g.printer(cmd).print(sum, func(t *table) {
				fmt.Fprintf(t.tw, "Wrote CRL %s of CA %s to %s: %d revoked certificate(s), next update %s.\n",
					sum.Number, caID, out, sum.Revoked, timestamp(sum.NextUpdate))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&caID, "ca", "", "id of the CA (required)")
	f.StringVar(&out, "out", "", `file to write the DER CRL to, "-" for standard output (required)`)
	f.StringVar(&pkiURL, "pki-url", "", "the server's PKI address, e.g. http://muster.example:8080")
	markRequired(cmd, "ca", "out")
	return cmd
}

// printCertificates prints certificates as a table, or the API's list as
// JSON.
func printCertificates(p printer, certs []client.Certificate) error {
	out := p.list(false, "CA", "SERIAL", "KIND", "NOT AFTER", "REVOKED", "REASON")
	for i := range certs {
		c := &certs[i]
		out.add(c, c.CAID, c.Serial, c.Kind, timestamp(c.NotAfter), optionalTime(c.RevokedAt), c.RevokeReasonName)
	}
	return out.close("")
}
