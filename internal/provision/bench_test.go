package provision_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/muster-iot/muster/internal/pki"
	"github.com/muster-iot/muster/internal/provision"
	pt "github.com/muster-iot/muster/internal/provision/provisiontest"
)

// Benchmarks of docs/provisioning.md and BENCHMARKS.md. Both run on the
// same machine as the load generator. Device keys and CSRs are made
// before the clock starts: on a real line each device makes its own.
// Everything else is timed: a new TLS connection per device with client
// certificate verification, the request, and for the end-to-end
// benchmark the whole pipeline with its durable commit.

// benchDevices manufactures n devices and makes a CSR for each.
func benchDevices(b *testing.B, n *pt.Node, count int) ([]tls.Certificate, [][]byte) {
	b.Helper()
	creds := make([]tls.Certificate, count)
	csrs := make([][]byte, count)
	for i := range count {
		d := n.Manufacture(b)
		creds[i] = d.Birth.TLS()
		csrs[i] = []byte(`{"csr":"` + strings.ReplaceAll(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: pt.MakeCSR(b, pt.NewKey(b), nil)})), "\n", `\n`) + `"}`)
	}
	return creds, csrs
}

// concurrency is how many devices connect at once: enough to keep both
// the server and the load generator busy.
func concurrency() int { return 32 * runtime.GOMAXPROCS(0) }

// hammer runs do(i) for i in [from, to) on concurrency() workers and
// returns how long that took.
func hammer(b *testing.B, from, to int, do func(i int) error) time.Duration {
	b.Helper()
	var next atomic.Int64
	next.Store(int64(from))
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency() {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := do(i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d failed; first: %v", f, to-from, firstErr.Load())
	}
	return elapsed
}

func postOnce(c *http.Client, url string, body []byte) error {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return &httpError{resp.StatusCode, string(b)}
	}
	return nil
}

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return http.StatusText(e.status) + ": " + e.body }

// endToEnd prepares count devices for the device listener and the
// pipeline (SQLite, or PostgreSQL with MUSTER_TEST_DATABASE_URL) and
// returns the provisioning of device i over a new mTLS connection.
func endToEnd(b *testing.B, count int) func(i int) error {
	n := pt.Start(b, func(c *provision.Config) {
		c.RateLimit = provision.RateLimit{Burst: 1000, Every: provision.Duration(time.Millisecond)}
		c.TemplateTTL = provision.DefaultTemplateTTL // the test default rereads every time
	})
	n.PutTemplate(b, pt.BasicTemplate(provision.DefaultTemplate))
	creds, bodies := benchDevices(b, n, count)
	clients := make([]*http.Client, count)
	for i := range clients {
		clients[i] = n.Client(&creds[i]) // DisableKeepAlives: a new connection per device
	}
	url := n.URL(provision.PathProvision)
	return func(i int) error { return postOnce(clients[i], url, bodies[i]) }
}

// bareLoop prepares the machine's limit for the same work without storage
// or policy: a new mTLS connection verified against the manufacturing CA,
// CSR checks and one certificate signature per device.
func bareLoop(b *testing.B, count int) func(i int) error {
	n := pt.Start(b)
	creds, bodies := benchDevices(b, n, count)
	op := n.PKI.Operational
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ CSR string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		block, _ := pem.Decode([]byte(in.CSR))
		csr, err := pki.CheckCSR(block.Bytes, pki.CSRRules{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cert, err := op.Issue(r.Context(), pki.OperationalProfile{DeviceID: "dev_bench"}, csr.PublicKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	}))
	server, err := n.PKI.ServerCertificate(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	mfg := x509.NewCertPool()
	mfg.AddCert(n.PKI.Manufacturing.Certificate())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: mfg}
	srv.StartTLS()
	b.Cleanup(srv.Close)
	clients := make([]*http.Client, count)
	for i := range clients {
		clients[i] = n.Client(&creds[i])
	}
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	return func(i int) error { return postOnce(clients[i], url, bodies[i]) }
}

// BenchmarkProvisioning measures end-to-end provisioning and the bare
// loop in the same run, in alternating rounds, so that both see the same
// machine (other load included), and reports both rates and their ratio.
// b.N devices go through each.
func BenchmarkProvisioning(b *testing.B) {
	const rounds = 5
	e2e, bare := endToEnd(b, b.N), bareLoop(b, b.N)
	var tE2E, tBare, cE2E, cBare time.Duration
	b.ResetTimer()
	for r := range rounds {
		from, to := r*b.N/rounds, (r+1)*b.N/rounds
		c0 := cpuTime()
		tBare += hammer(b, from, to, bare)
		c1 := cpuTime()
		tE2E += hammer(b, from, to, e2e)
		cBare, cE2E = cBare+c1-c0, cE2E+cpuTime()-c1
	}
	b.StopTimer()
	// CPU per device shows where the time goes when the machine is
	// shared; utilisation shows whether a run was CPU-bound.
	b.ReportMetric(float64(cE2E.Microseconds())/float64(b.N), "e2e-cpu-µs/device")
	b.ReportMetric(float64(cBare.Microseconds())/float64(b.N), "bare-cpu-µs/device")
	b.ReportMetric(100*cE2E.Seconds()/tE2E.Seconds()/float64(runtime.GOMAXPROCS(0)), "e2e-cpu-%")
	e, m := float64(b.N)/tE2E.Seconds(), float64(b.N)/tBare.Seconds()
	b.ReportMetric(e, "e2e-devices/s")
	b.ReportMetric(m, "bare-devices/s")
	b.ReportMetric(100*e/m, "%-of-bare")
}

// BenchmarkReprovisionStorm provisions b.N devices, then has all of them
// re-provision at once (a fleet-wide factory reset, or an operational CA
// compromise), stormConcurrency connections in flight. Only 429s may
// happen, each retried after Retry-After until it succeeds; every old
// certificate must end up revoked.
func BenchmarkReprovisionStorm(b *testing.B) {
	const stormConcurrency = 512
	n := pt.Start(b, func(c *provision.Config) { c.TemplateTTL = provision.DefaultTemplateTTL })
	tmpl := pt.BasicTemplate(provision.DefaultTemplate)
	tmpl.Reprovisioning = provision.ReprovisionReset
	n.PutTemplate(b, tmpl)
	creds, first := benchDevices(b, n, b.N)
	url := n.URL(provision.PathProvision)
	clients := make([]*http.Client, b.N)
	for i := range clients {
		clients[i] = n.Client(&creds[i])
	}
	hammer(b, 0, b.N, func(i int) error { return postOnce(clients[i], url, first[i]) })
	second := make([][]byte, b.N)
	for i := range second {
		second[i] = []byte(`{"csr":"` + strings.ReplaceAll(pemCSR(pt.MakeCSR(b, pt.NewKey(b), nil)), "\n", `\n`) + `"}`)
	}
	var limited, failed atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range stormConcurrency {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
				for {
					err := postOnce(clients[i], url, second[i])
					var he *httpError
					if errors.As(err, &he) && he.status == http.StatusTooManyRequests {
						limited.Add(1)
						time.Sleep(time.Second)
						continue
					}
					if err != nil {
						failed.Add(1)
						b.Errorf("device %d: %v", i, err)
					}
					break
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(elapsed.Seconds(), "storm-s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "devices/s")
	b.ReportMetric(float64(limited.Load()), "429s")
	b.ReportMetric(float64(failed.Load()), "errors")
	revoked, err := n.Store.RevokedByCA(context.Background(), "ca-operational")
	if err != nil || len(revoked) != b.N {
		b.Errorf("%d old certificates revoked, want %d (%v)", len(revoked), b.N, err)
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
