package server

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/muster-iot/muster/internal/deviceauth"
	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/provision"
	"github.com/muster-iot/muster/internal/region"
	"github.com/muster-iot/muster/internal/store"
)

// Region routes on the device listener.
const (
	// ProbePath is what devices time: a TLS handshake and this request.
	ProbePath = "/v1/probe"
	// BootstrapPath answers the signed bootstrap document.
	BootstrapPath = "/v1/bootstrap"
	// RegionReportPath takes a provisioned device's fresh measurements.
	RegionReportPath = "/v1/regions/report"
)

// maxReportBody bounds a measurement report.
const maxReportBody = 64 << 10

// probeAnswer is the body of GET /v1/probe: small, and naming the region,
// so a device can tell it reached the one it meant to.
type probeAnswer struct {
	Region string `json:"region"`
}

// ReportRequest is the body of POST /v1/regions/report.
type ReportRequest struct {
	Measurements map[string]region.Measurement `json:"measurements"`
}

// Reissuer tells whether a device's certificate is from the CA that issues
// for its home region; *ca.Registry has it.
type Reissuer interface {
	NeedsReissue(ctx context.Context, cert *x509.Certificate, region string) (bool, error)
}

// regionRoutes serves the probe, the bootstrap document (signed with the
// device listener's own key and certificate, which chain to the root
// devices trust) and measurement reports, whose answer says renew when the
// device's certificate is not from its home region's CA (cas may be nil).
func regionRoutes(l *DeviceListener, svc *region.Service, cas Reissuer, listenerCert tls.Certificate, log *slog.Logger) error {
	key, ok := listenerCert.PrivateKey.(crypto.Signer)
	if !ok {
		return errors.New("regions: the device listener's key cannot sign")
	}
	var chain []*x509.Certificate
	for _, der := range listenerCert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("regions: device listener certificate: %w", err)
		}
		chain = append(chain, c)
	}
	both := []pki.IdentityKind{pki.IdentityBirth, pki.IdentityOperational}
	probe, _ := json.Marshal(probeAnswer{Region: svc.Node()})
	l.Handle("GET "+ProbePath, both, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(probe)
	}))
	l.Handle("GET "+BootstrapPath, both, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, err := svc.Bootstrap(r.Context(), key, chain)
		if err != nil {
			log.ErrorContext(r.Context(), "bootstrap document", "err", err)
			http.Error(w, "internal error; retry later", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jose")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, doc)
	}))
	l.Handle("POST "+RegionReportPath, []pki.IdentityKind{pki.IdentityOperational}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := deviceauth.IdentityFrom(r.Context())
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReportBody))
		dec.DisallowUnknownFields()
		var in ReportRequest
		if err := dec.Decode(&in); err != nil {
			provision.WriteJSON(w, http.StatusBadRequest, provision.JSONError{Code: "bad_request", Message: "body is not a measurement report: " + err.Error()})
			return
		}
		if len(in.Measurements) > 64 {
			provision.WriteJSON(w, http.StatusBadRequest, provision.JSONError{Code: "bad_request", Message: "measurements of at most 64 regions"})
			return
		}
		ans, err := svc.Report(r.Context(), id.DeviceID, in.Measurements, "device/"+id.DeviceID)
		if errors.Is(err, store.ErrNotFound) {
			provision.WriteJSON(w, http.StatusForbidden, provision.JSONError{Code: "refused", Message: "report refused"})
			return
		}
		if err != nil {
			log.ErrorContext(r.Context(), "region report", "device", id.DeviceID, "err", err)
			provision.WriteJSON(w, http.StatusInternalServerError, provision.JSONError{Code: "internal", Message: "internal error; retry later"})
			return
		}
		if cas != nil && id.Certificate != nil && ans.Region != "" {
			renew, err := cas.NeedsReissue(r.Context(), id.Certificate, ans.Region)
			if err != nil {
				// The move is recorded; the device renews from its new
				// home's CA at its next renewal anyway.
				log.WarnContext(r.Context(), "region report: could not tell whether the device needs a new certificate", "device", id.DeviceID, "err", err)
			}
			ans.Renew = renew
		}
		provision.WriteJSON(w, http.StatusOK, ans)
	}))
	return nil
}

// registerNodeRegion creates the node's region from its own listeners when
// the node was started with --region and no region of that name exists
// yet, so a first start needs no separate `muster regions add`. An
// existing region is left as the operator made it.
func registerNodeRegion(ctx context.Context, st *store.Store, name, deviceAddr, mqttAddr string, log *slog.Logger) error {
	if _, err := st.Region(ctx, name); err == nil || !errors.Is(err, store.ErrNotFound) {
		return err
	}
	g := &store.Region{Name: name, ProvisionURL: "https://" + deviceAddr, MQTTURL: "mqtts://" + mqttAddr,
		ProbeURL: "https://" + deviceAddr + ProbePath, Weight: 1}
	if err := region.Validate(g); err != nil {
		return fmt.Errorf("region %s: %w", name, err)
	}
	err := st.CreateRegion(ctx, g, "node/"+name)
	if errors.Is(err, store.ErrDuplicate) {
		return nil // another node of the region registered it first
	}
	if err == nil {
		log.InfoContext(ctx, "region registered from this node's listeners", "region", name, "provision_url", g.ProvisionURL, "mqtt_url", g.MQTTURL)
	}
	return err
}
