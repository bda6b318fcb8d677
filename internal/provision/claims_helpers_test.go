package provision_test

import (
	"encoding/pem"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
	"net/http/httptest"
	"testing"
)

// claimServer serves the claim route over TLS without client certificates.
func claimServer(t testing.TB, n *pt.Node) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(n.Pipeline.ClaimHandler(nil))
	t.Cleanup(srv.Close)
	return srv
}

func pemCSR(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}
