package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-iot/muster/client"
	"github.com/muster-iot/muster/internal/store/pgtest"
)

// TestReadmeJobs runs the README's bulk jobs block against a fresh server.
func TestReadmeJobs(t *testing.T) {
	out := runReadmeBlock(t, "jobs")
	for _, want := range []string{
		"4 of 4 applied (2 ok, 0 unchanged, 2 errors)",
		"template fleet-sensors does not serve factory \\\"acme\\\" model \\\"sensor-y\\\"",
		`"serial":"FS 0004"`,
		`{"ok":0,"unchanged":2,"errors":2}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("jobs block output lacks %q:\n%s", want, out)
		}
	}
}

// jobRows is the size of the kill tests' jobs: enough chunks that a kill
// lands in the middle, few enough to take seconds.
const jobRows = 20000

// TestJobSurvivesKill9 kills the server with SIGKILL in the middle of a
// job, starts it again on the same data directory, and checks the job
// finishes with every row applied exactly once.
func TestJobSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a 20,000-row job")
	}
	bin := buildMuster(t)
	dir := t.TempDir()
	n := startNode(t, bin, dir)
	c := n.client(t)
	ctx := context.Background()
	putFleetTemplate(t, c)
	job, err := c.StartJob(ctx, strings.NewReader(killManifest(jobRows)), client.JobOptions{Op: client.JobRegister, Format: client.FormatJSONL, Template: "kill-test", Factory: "acme", Model: "sensor-x"})
	if err != nil {
		t.Fatal(err)
	}
	mid := waitMidJob(t, c, job.ID)
	t.Logf("killing the server with %d of %d rows applied", mid.Done(), mid.Rows)
	n.kill(t)

	n = startNode(t, bin, dir)
	job = waitJobDone(t, n.client(t), job.ID)
	checkExactlyOnce(t, n.client(t), job)
	n.stop(t)
}

// TestJobTakeoverTwoNodes runs two nodes on one PostgreSQL database, kills
// the node running a job, and checks the other finishes it with every row
// applied exactly once.
func TestJobTakeoverTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a 20,000-row job on two nodes")
	}
	db := pgtest.URL(t)
	if db == "" {
		t.Skip("MUSTER_TEST_DATABASE_URL not set: the two-node test needs PostgreSQL")
	}
	bin := buildMuster(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	nodes := map[string]*node{"a": startNode(t, bin, dirA, "--database-url", db, "--node-id", "a")}
	// The nodes share the CA hierarchy through the database; node b needs
	// node a's CA passphrase (in production: MUSTER_CA_PASSPHRASE on every
	// node, or an HSM).
	copyKeys(t, dirA, dirB)
	nodes["b"] = startNode(t, bin, dirB, "--database-url", db, "--node-id", "b")

	ca := nodes["a"].client(t)
	ctx := context.Background()
	putFleetTemplate(t, ca)
	job, err := ca.StartJob(ctx, strings.NewReader(killManifest(jobRows)), client.JobOptions{Op: client.JobRegister, Format: client.FormatJSONL, Template: "kill-test", Factory: "acme", Model: "sensor-x"})
	if err != nil {
		t.Fatal(err)
	}
	running := waitMidJob(t, ca, job.ID)
	victim, survivor := running.Node, "a"
	if victim == "a" {
		survivor = "b"
	}
	t.Logf("node %s runs the job (%d of %d rows applied); killing it", victim, running.Done(), running.Rows)
	nodes[victim].kill(t)

	cs := nodes[survivor].client(t)
	job = waitJobDone(t, cs, job.ID)
	if job.Node != survivor {
		t.Errorf("job finished on node %q, want the survivor %q", job.Node, survivor)
	}
	checkExactlyOnce(t, cs, job)
	nodes[survivor].stop(t)
}

// buildMuster builds the muster binary once per test.
func buildMuster(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "muster")
	build := exec.Command("go", "build", "-o", bin, "./cmd/muster")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// node is one `muster serve` process.
type node struct {
	dir  string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startNode(t *testing.T, bin, dir string, args ...string) *node {
	t.Helper()
	os.Remove(filepath.Join(dir, "api.addr"))
	n := &node{dir: dir, log: &syncBuffer{}, done: make(chan struct{})}
	n.cmd = exec.Command(bin, append([]string{"serve", "--data-dir", dir, "--api-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0",
		"--pki-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"}, args...)...)
	n.cmd.Env = cleanEnv()
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = n.cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		<-n.done
		if t.Failed() {
			t.Logf("log of the node in %s:\n%s", dir, n.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "api.addr")); err == nil {
			return n
		}
		select {
		case <-n.done:
			t.Fatalf("muster serve exited at start:\n%s", n.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("muster serve did not start within 60s:\n%s", n.log.String())
		}
	}
}

func (n *node) client(t *testing.T) *client.Client {
	t.Helper()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(n.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	c, err := client.New("https://"+read("api.addr"), client.WithToken(read("admin.token")), client.WithCAFile(filepath.Join(n.dir, "ca.pem")))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kill sends SIGKILL: no shutdown, no deferred code, as a crash.
func (n *node) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-n.done
}

// stop ends the node gracefully, as an operator would.
func (n *node) stop(t *testing.T) {
	t.Helper()
	_ = n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		t.Error("node did not stop within 30s of SIGINT")
	}
}

// copyKeys gives node b what it needs to use the CA hierarchy node a
// created in the shared database: the CA passphrase, and the key files when
// the data directory holds them.
func copyKeys(t *testing.T, from, to string) {
	t.Helper()
	srcs := []string{filepath.Join(from, "ca.passphrase")}
	if _, err := os.Stat(filepath.Join(from, "keys")); err == nil {
		srcs = append(srcs, filepath.Join(from, "keys"))
	}
	cp := exec.Command("cp", append(append([]string{"-a"}, srcs...), to)...)
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("copy CA keys: %v\n%s", err, out)
	}
}

func putFleetTemplate(t *testing.T, c *client.Client) {
	t.Helper()
	if _, err := c.CreateTemplate(context.Background(), []byte(`{"name":"kill-test","models":["sensor-x"]}`)); err != nil {
		t.Fatal(err)
	}
}

func killManifest(rows int) string {
	var b strings.Builder
	for i := range rows {
		fmt.Fprintf(&b, `{"serial":"K-%07d","owner":"acme","attributes":{"row":"%d"}}`+"\n", i, i+1)
	}
	return b.String()
}

// waitMidJob waits until the job runs with some, not all, chunks applied.
func waitMidJob(t *testing.T, c *client.Client, id string) *client.Job {
	t.Helper()
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		j, err := c.GetJob(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Finished() {
			t.Fatalf("the job finished before the kill: %+v", j)
		}
		if j.Status == client.JobRunning && j.ChunksDone >= 2 {
			return j
		}
	}
	t.Fatal("the job did not start within 120s")
	return nil
}

func waitJobDone(t *testing.T, c *client.Client, id string) *client.Job {
	t.Helper()
	for deadline := time.Now().Add(180 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		j, err := c.GetJob(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Finished() {
			return j
		}
	}
	t.Fatal("the job did not finish within 180s")
	return nil
}

// checkExactlyOnce checks every row was applied once: all ok (a chunk
// applied twice would answer its rows unchanged), one result per row in
// row order, and as many devices as rows.
func checkExactlyOnce(t *testing.T, c *client.Client, j *client.Job) {
	t.Helper()
	ctx := context.Background()
	if j.Status != client.JobDone || j.OK != jobRows || j.Unchanged != 0 || j.Errors != 0 || j.ChunksDone != j.Chunks {
		t.Fatalf("job after the kill: %+v", j)
	}
	next := int64(1)
	err := c.JobResults(ctx, j.ID, false, func(r client.JobResult) error {
		if r.Row != next || r.Status != client.JobRowOK || r.Serial != fmt.Sprintf("K-%07d", r.Row-1) {
			return fmt.Errorf("result %d: %+v", next, r)
		}
		next++
		return nil
	})
	if err != nil || next != jobRows+1 {
		t.Fatalf("results: %v after %d rows", err, next-1)
	}
	devices := 0
	for d, err := range c.Devices(ctx, client.DeviceFilter{SerialPrefix: "K-"}) {
		if err != nil {
			t.Fatal(err)
		}
		if d.Attributes["row"] == "" {
			t.Fatalf("device without its row: %+v", d)
		}
		devices++
	}
	if devices != jobRows {
		t.Fatalf("%d devices registered, want %d", devices, jobRows)
	}
}

// TestServeLeaseTTLValidated refuses lease lifetimes that would be lost to
// a slow round trip, from the flag and from MUSTER_LEASE_TTL, before
// anything is created.
func TestServeLeaseTTLValidated(t *testing.T) {
	isolateEnv(t)
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{args: []string{"--lease-ttl", "100ms"}, want: "--lease-ttl 100ms: use at least 1s"},
		{args: []string{"--lease-ttl", "-5s"}, want: "--lease-ttl -5s: use at least 1s"},
		{env: "soon", want: "MUSTER_LEASE_TTL"},
	} {
		t.Setenv("MUSTER_LEASE_TTL", tc.env)
		dir := filepath.Join(t.TempDir(), "data")
		_, stderr, code := runCLI(t, append([]string{"serve", "--data-dir", dir}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %v (MUSTER_LEASE_TTL=%q): code %d, stderr %q; want an error naming %q", tc.args, tc.env, code, stderr, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("serve %v created its data directory despite the bad lease TTL", tc.args)
		}
	}
}

// TestServeDetectFlagsValidated refuses detection settings that cannot
// work, before anything is created.
func TestServeDetectFlagsValidated(t *testing.T) {
	isolateEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{args: []string{"--detect-checkpoint", "10ms"}, want: "--detect-checkpoint 10ms: want at least 1s"},
		{args: []string{"--detect-learning", "0"}, want: "--detect-learning 0: want at least 1"},
		{args: []string{"--meter-window", "48h"}, want: "--meter-window 48h0m0s: want 1s to 24h"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		_, stderr, code := runCLI(t, append([]string{"serve", "--data-dir", dir}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %v: code %d, stderr %q; want an error naming %q", tc.args, code, stderr, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("serve %v created its data directory despite the bad setting", tc.args)
		}
	}
}

// TestServeJobRetentionValidated refuses a negative job retention, from the
// flag and from MUSTER_JOB_RETENTION, before anything is created.
func TestServeJobRetentionValidated(t *testing.T) {
	isolateEnv(t)
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{args: []string{"--job-retention", "-1h"}, want: "--job-retention -1h0m0s: must not be negative"},
		{env: "-720h", want: "--job-retention -720h0m0s: must not be negative"},
		{env: "a month", want: "MUSTER_JOB_RETENTION"},
	} {
		t.Setenv("MUSTER_JOB_RETENTION", tc.env)
		dir := filepath.Join(t.TempDir(), "data")
		_, stderr, code := runCLI(t, append([]string{"serve", "--data-dir", dir}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %v (MUSTER_JOB_RETENTION=%q): code %d, stderr %q; want an error naming %q", tc.args, tc.env, code, stderr, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("serve %v (MUSTER_JOB_RETENTION=%q) created its data directory despite the bad retention", tc.args, tc.env)
		}
	}
}
