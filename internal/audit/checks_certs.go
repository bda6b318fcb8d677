package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// The certificate checks.

func checkCertShared() Check {
	c := Check{ID: "cert-shared", Severity: SeverityCritical, Title: "Certificate key shared by several devices",
		Description: "One public key is certified for more than one device: a cloned device or a broken key generator. Every device holding it can impersonate the others."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		shared, err := sc.st.SharedKeys(ctx)
		if err != nil {
			return err
		}
		for fp, devs := range shared {
			for _, d := range devs {
				others := slices.DeleteFunc(slices.Clone(devs), func(o string) bool { return o == d })
				emit(c.finding(SubjectDevice, d, d, fp[:min(16, len(fp))],
					fmt.Sprintf("device %s holds a certificate for key %s, which is also certified for %s", d, short(fp), strings.Join(others, ", ")),
					"Revoke the certificates of this key on every device (muster certs revoke), then re-provision each device so it makes a key of its own; investigate how the key was copied.",
					map[string]any{"fingerprint": fp, "devices": devs}))
			}
		}
		return nil
	}
	return c
}

func checkCertCloned() Check {
	c := Check{ID: "cert-cloned", Severity: SeverityHigh, Title: "Certificate used from conflicting places at once",
		Description: "Within one metering window the device's certificate was live on several nodes, or from several source addresses while sessions took each other over: two holders of one certificate."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		if err := sc.loadMeter(ctx); err != nil {
			return err
		}
		for dev, m := range sc.meter {
			if len(m.conflicts) == 0 {
				continue
			}
			slices.SortFunc(m.conflicts, func(a, b conflict) int { return a.Window.Compare(b.Window) })
			last := m.conflicts[len(m.conflicts)-1]
			emit(c.finding(SubjectDevice, dev, dev, "",
				fmt.Sprintf("device %s was connected from %d places at once in %d metering windows (latest %s: nodes %s, addresses %s)",
					dev, max(len(last.Nodes), len(last.SourceIPs)), len(m.conflicts), last.Window.Format(time.RFC3339),
					strings.Join(last.Nodes, ", "), strings.Join(last.SourceIPs, ", ")),
				"Treat the certificate as cloned: quarantine the device, revoke its certificates and re-provision it; find the second holder from the source addresses.",
				map[string]any{"windows": m.conflicts}))
		}
		return nil
	}
	return c
}

func checkCAExpiring() Check {
	c := Check{ID: "ca-expiring", Severity: SeverityHigh, Title: "CA certificate expiring",
		Description: "A CA that signs or anchors trust expires within the CA expiry warning period (default 90 days), or has expired."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		cas, err := sc.st.ListCAs(ctx, store.CAFilter{})
		if err != nil {
			return err
		}
		for _, ca := range cas {
			if ca.Status == "retired" || ca.NotAfter.After(sc.now.Add(sc.p.CAExpiryWarning)) {
				continue
			}
			what := "expires " + ca.NotAfter.Format(time.RFC3339)
			if !ca.NotAfter.After(sc.now) {
				what = "expired " + ca.NotAfter.Format(time.RFC3339)
			}
			emit(c.finding(SubjectCA, ca.ID, "", "",
				fmt.Sprintf("%s CA %s%s %s", ca.Purpose, ca.ID, factoryNote(ca.Factory), what),
				"Rotate the CA before it expires (muster ca rotate, docs/ca-rotation.md); devices then renew onto the new one during the overlap.",
				map[string]any{"purpose": ca.Purpose, "factory": ca.Factory, "notAfter": ca.NotAfter, "status": ca.Status}))
		}
		return nil
	}
	return c
}

func factoryNote(f string) string {
	if f == "" {
		return ""
	}
	return " (factory " + f + ")"
}

func checkCertExpiring() Check {
	c := Check{ID: "cert-expiring", Severity: SeverityMedium, Title: "Device certificate expiring",
		Description: "A device that may connect holds no operational certificate valid beyond the certificate expiry warning period (default 30 days)."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		if err := errors.Join(sc.loadOpCerts(ctx), sc.loadDevices(ctx)); err != nil {
			return err
		}
		for dev, cert := range sc.opCerts {
			info, ok := sc.devices[dev]
			if !ok || !fleet.CanConnect(info.state) || cert.NotAfter.After(sc.now.Add(sc.p.CertExpiryWarning)) {
				continue
			}
			what := "expires " + cert.NotAfter.Format(time.RFC3339)
			if !cert.NotAfter.After(sc.now) {
				what = "expired " + cert.NotAfter.Format(time.RFC3339)
			}
			emit(c.finding(SubjectDevice, dev, dev, "",
				fmt.Sprintf("operational certificate %s/%s of device %s %s", cert.CAID, cert.Serial, dev, what),
				"Ask the device to renew (muster devices rotate ID); an expired certificate must renew within its template's grace or re-provision.",
				map[string]any{"caId": cert.CAID, "serial": cert.Serial, "notAfter": cert.NotAfter}))
		}
		return nil
	}
	return c
}

func checkCertTooOld() Check {
	c := Check{ID: "cert-too-old", Severity: SeverityMedium, Title: "Operational certificate older than the maximum age",
		Description: "A device's newest operational certificate was issued longer ago than the maximum certificate age (default 365 days): its key has not been rotated."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		if err := errors.Join(sc.loadOpCerts(ctx), sc.loadDevices(ctx)); err != nil {
			return err
		}
		for dev, cert := range sc.opCerts {
			info, ok := sc.devices[dev]
			if !ok || !fleet.CanConnect(info.state) || cert.NotBefore.After(sc.now.Add(-sc.p.MaxCertAge)) {
				continue
			}
			emit(c.finding(SubjectDevice, dev, dev, "",
				fmt.Sprintf("operational certificate %s/%s of device %s was issued %s, %d days ago", cert.CAID, cert.Serial, dev,
					cert.NotBefore.Format(time.RFC3339), int(sc.now.Sub(cert.NotBefore).Hours()/24)),
				"Rotate the device's key: muster devices rotate ID makes it renew with a new key.",
				map[string]any{"caId": cert.CAID, "serial": cert.Serial, "notBefore": cert.NotBefore}))
		}
		return nil
	}
	return c
}

func checkWeakKey() Check {
	c := Check{ID: "weak-key", Severity: SeverityHigh, Title: "Weak key",
		Description: "A valid, unrevoked certificate (a device's or a CA's) has an RSA key under 2048 bits, an elliptic curve under 256 bits, or a DSA key."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		err := sc.st.EachCertificate(ctx, func(cert *store.Certificate) error {
			if cert.RevokedAt != nil || !cert.NotAfter.After(sc.now) {
				return nil
			}
			weak, desc, err := weakKey(cert.CertPEM, sc.p)
			if err != nil {
				desc, weak = "unreadable certificate: "+err.Error(), true
			}
			if !weak {
				return nil
			}
			id := cert.CAID + "/" + cert.Serial
			emit(c.finding(SubjectCertificate, id, cert.DeviceID, "",
				fmt.Sprintf("%s certificate %s of device %s: %s", cert.Kind, id, cert.DeviceID, desc),
				"Revoke the certificate and re-provision the device with a P-256 (or stronger) key; restrict the template's certificate.keyTypes.",
				map[string]any{"caId": cert.CAID, "serial": cert.Serial, "kind": cert.Kind, "key": desc}))
			return nil
		})
		if err != nil {
			return err
		}
		cas, err := sc.st.ListCAs(ctx, store.CAFilter{})
		if err != nil {
			return err
		}
		for _, ca := range cas {
			if ca.Status == "retired" || !ca.NotAfter.After(sc.now) {
				continue
			}
			weak, desc, err := weakKey(ca.CertPEM, sc.p)
			if err != nil {
				desc, weak = "unreadable certificate: "+err.Error(), true
			}
			if weak {
				emit(c.finding(SubjectCA, ca.ID, "", "", fmt.Sprintf("%s CA %s: %s", ca.Purpose, ca.ID, desc),
					"Rotate the CA to a P-256 or P-384 key (muster ca rotate, docs/ca-rotation.md).",
					map[string]any{"purpose": ca.Purpose, "key": desc}))
			}
		}
		return nil
	}
	return c
}

func checkRevokedConnecting() Check {
	c := Check{ID: "revoked-connecting", Severity: SeverityHigh, Title: "Revoked certificate still trying to connect",
		Description: "The gateway refused connection attempts with a revoked certificate naming this device within the metering lookback (default 24 hours): something still holds and uses a certificate that was taken away."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		if err := sc.loadMeter(ctx); err != nil {
			return err
		}
		for dev, m := range sc.meter {
			if m.revokedAttempts == 0 {
				continue
			}
			emit(c.finding(SubjectDevice, dev, dev, "",
				fmt.Sprintf("%d connection attempts with a revoked certificate of device %s in the last %s", m.revokedAttempts, dev, sc.p.MeteringLookback),
				"Find who holds the revoked certificate (source addresses: muster devices metrics ID); if the device itself, re-provision it; otherwise treat it as stolen and block the addresses.",
				map[string]any{"revokedAttempts": m.revokedAttempts, "lookback": sc.p.MeteringLookback.String()}))
		}
		return nil
	}
	return c
}

func checkBirthAfterProvisioning() Check {
	c := Check{ID: "birth-after-provisioning", Severity: SeverityHigh, Title: "Birth certificate used after provisioning",
		Description: "A device's birth certificate made a provisioning request after the device received its current operational certificate, and no new certificate came of it: the birth identity is being replayed, or the device lost its operational identity."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		if err := errors.Join(sc.loadOpCerts(ctx), sc.loadDevices(ctx)); err != nil {
			return err
		}
		reqs, err := sc.st.BirthRequests(ctx, time.Time{})
		if err != nil {
			return err
		}
		type use struct {
			n    int
			last time.Time
			kind []string
		}
		uses := map[string]*use{}
		for _, r := range reqs {
			cert, ok := sc.opCerts[r.DeviceID]
			if !ok || !r.CreatedAt.After(cert.CreatedAt) || r.Status == "issued" {
				continue
			}
			u := uses[r.DeviceID]
			if u == nil {
				u = &use{}
				uses[r.DeviceID] = u
			}
			u.n++
			u.kind = appendNew(u.kind, r.Kind+"/"+r.Status)
			if r.CreatedAt.After(u.last) {
				u.last = r.CreatedAt
			}
		}
		for dev, u := range uses {
			if info, ok := sc.devices[dev]; ok && info.state == fleet.StateReprovisioning {
				continue // a re-provisioning under way uses the birth certificate by design
			}
			emit(c.finding(SubjectDevice, dev, dev, "",
				fmt.Sprintf("the birth certificate of device %s made %d provisioning requests after its operational certificate was issued (latest %s)",
					dev, u.n, u.last.Format(time.RFC3339)),
				"Check whether the device lost its operational identity (then re-provision it deliberately); otherwise the birth key is copied: revoke the birth certificate and investigate.",
				map[string]any{"requests": u.n, "latest": u.last, "requestKinds": u.kind}))
		}
		return nil
	}
	return c
}

// short abbreviates a fingerprint for messages.
func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}
