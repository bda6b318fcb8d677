package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/muster-iot/muster/internal/store/pgtest"
)

// TestReadmeNodes runs the README's "Running several nodes on PostgreSQL"
// block verbatim: it starts two nodes on one fresh PostgreSQL schema
// itself, so no server is started for it.
func TestReadmeNodes(t *testing.T) {
	out, _ := runNodesBlock(t, "nodes", []string{"node-a.log", "node-b.log"})
	for _, want := range []string{
		"both nodes serve the same root CA",
		"node B reads SN-0001, manufactured",
		"node B accepts the birth certificate",
		"node B refuses the revoked certificate",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nodes block output lacks %q:\n%s", want, out)
		}
	}
}

// clusterRows and clusterSim are the README cluster block's N and SIM in
// CI: enough rows that the kill lands mid-job, few enough to take seconds.
const clusterRows, clusterSim = 20000, 200

// TestReadmeCluster runs the README's two-node demo of issue 6 with a
// smaller N and SIM: a pre-registration job started on one node, the node
// running it killed with SIGKILL mid-job, the other finishing it with every
// row applied once, then a simulated fleet provisioned across both nodes.
func TestReadmeCluster(t *testing.T) {
	out, dir := runNodesBlock(t, "cluster", []string{"cluster-a.log", "cluster-b.log"},
		"N="+strconv.Itoa(clusterRows), "SIM="+strconv.Itoa(clusterSim))
	t.Logf("cluster block output:\n%s", out)

	killed := regexp.MustCompile(`killed node (a|b) with (\d+) of (\d+) rows applied`).FindStringSubmatch(out)
	if killed == nil {
		t.Fatalf("cluster block did not report the kill:\n%s", out)
	}
	victim := killed[1]
	if done, _ := strconv.Atoi(killed[2]); done <= 0 || done >= clusterRows || killed[3] != strconv.Itoa(clusterRows) {
		t.Errorf("the kill did not land mid-job: %q", killed[0])
	}
	finished := regexp.MustCompile(`job (\w+) on node (\w+): (\d+) ok, (\d+) unchanged, (\d+) errors of (\d+) rows`).FindStringSubmatch(out)
	n := strconv.Itoa(clusterRows)
	if finished == nil || finished[1] != "done" || finished[2] == victim || finished[3] != n || finished[4] != "0" || finished[5] != "0" || finished[6] != n {
		t.Errorf("want the job done on the node that was not killed (%s), all %s rows ok once; got %q", victim, n, finished)
	}
	for _, want := range []string{
		n + " distinct serials ok in " + n + " results",
		"again: 0 ok, " + n + " unchanged, 0 errors",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster block output lacks %q:\n%s", want, out)
		}
	}
	// devices count, after the job and before the simulated fleet adds
	// devices of the same model, finds exactly the job's devices.
	if !regexp.MustCompile(`(?m)^` + n + ` devices$`).MatchString(out) {
		t.Errorf("cluster block output lacks the count line %q:\n%s", n+" devices", out)
	}
	sim := strconv.Itoa(clusterSim)
	for _, row := range []string{"Manufactured", "Provisioned", "Connected"} {
		if !regexp.MustCompile(`(?m)^` + row + `\s+` + sim + ` in `).MatchString(out) {
			t.Errorf("the simulated fleet's %s row does not say %s devices:\n%s", row, sim, out)
		}
	}
	if !regexp.MustCompile(`(?m)^Dropped\s+0$`).MatchString(out) {
		t.Errorf("simulated devices were dropped:\n%s", out)
	}
	// The survivor took the job over under the lease, and holds (or took
	// over) CRL publication too: the killed node's leases moved to it.
	survivor := "a"
	if victim == "a" {
		survivor = "b"
	}
	log, err := os.ReadFile(filepath.Join(dir, "cluster-"+survivor+".log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"job running", "job finished", "revocation: this node publishes the CRLs"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the survivor's log lacks %q:\n%s", want, log)
		}
	}
}

// runNodesBlock runs a README block that starts its own nodes on a fresh
// PostgreSQL schema, with extra environment variables, and returns its
// output and the directory it ran in. logs are the node logs shown when it
// fails.
func runNodesBlock(t *testing.T, name string, logs []string, env ...string) (string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	url := pgtest.URL(t)
	if url == "" {
		t.Skip(pgtest.Env + " not set")
	}
	return runOwnNodesBlock(t, name, []string{"bash", "jq", "curl", "openssl", "awk"}, logs, append([]string{"MUSTER_DATABASE_URL=" + url}, env...)...)
}

// runOwnNodesBlock runs README block name, which starts its own nodes,
// in a scratch copy of the repository with env added to a clean
// environment, and returns its output and that directory. tools are the
// commands it needs; logs, files of the directory, are shown when it
// fails.
func runOwnNodesBlock(t *testing.T, name string, tools, logs []string, env ...string) (string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed by the README's %s block: %v", tool, name, err)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := scratchRepo(t, root)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeBlock(t, string(readme), name))
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	// Its own process group, so that nodes (and proxies) the block leaves
	// running when it fails are stopped with it, before a test schema is
	// dropped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	if err != nil {
		for _, log := range logs {
			b, _ := os.ReadFile(filepath.Join(dir, log))
			t.Logf("%s:\n%s", log, b)
		}
		t.Fatalf("README %s block failed: %v\n%s", name, err, out.String())
	}
	return out.String(), dir
}
