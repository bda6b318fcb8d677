package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadmeWalkthrough runs the README's walkthrough block verbatim, as a
// new user would paste it, against `muster serve` started the README's way.
// It keeps the README true: a changed flag or output breaks this test.
func TestReadmeWalkthrough(t *testing.T) {
	text := runReadmeBlock(t, "walkthrough")
	for _, want := range []string{
		"allowed next states are pending, provisioned, decommissioned", // the refused move
		"history intact",
		"SN-0001",
		"crypto-erase",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("walkthrough output lacks %q:\n%s", want, text)
		}
	}
}

// runReadmeBlock runs the README's shell blocks between <!-- name:start -->
// and <!-- name:end -->, one after the other, verbatim against one
// `muster serve` started the README's way, in a scratch copy of the
// repository, and returns what they printed.
func runReadmeBlock(t *testing.T, names ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, tool := range []string{"bash", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed by the README walkthrough: %v", tool, err)
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
	var script strings.Builder
	for _, name := range names {
		script.WriteString(readmeBlock(t, string(readme), name) + "\n")
	}

	dir := scratchRepo(t, root)
	bin := filepath.Join(t.TempDir(), "muster")
	build := exec.Command("go", "build", "-o", bin, "./cmd/muster")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serverLog bytes.Buffer
	serve := exec.CommandContext(ctx, bin, "serve", "--api-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0", "--pki-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0")
	serve.Dir = dir
	serve.Env = cleanEnv()
	serve.Stdout, serve.Stderr = &serverLog, &serverLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = serve.Wait()
	}()
	// A cleanup, not the defer: the caller's checks of the output run
	// after this function returns, and their failures need the log too.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", serverLog.String())
		}
	})
	waitForFile(t, filepath.Join(dir, "muster-data", "api.addr"))

	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README %s block failed: %v\n%s", strings.Join(names, "+"), err, out)
	}
	return string(out)
}

// scratchRepo makes a scratch copy of the repository at root (symlinks),
// so that what README blocks write, ./muster-data included, does not land
// in the working tree.
func scratchRepo(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	// Only the repository's own files, tracked or new: what earlier
	// walkthroughs left in the checkout (data directories, batches, keys;
	// .gitignore lists them) stays out.
	out, err := exec.Command("git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("list the repository's files: %v", err)
	}
	seen := map[string]bool{}
	for _, path := range strings.Fields(string(out)) {
		top, _, _ := strings.Cut(path, "/")
		if seen[top] || top == "muster-data" {
			continue
		}
		seen[top] = true
		if err := os.Symlink(filepath.Join(root, top), filepath.Join(dir, top)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readmeBlock extracts the shell block between a pair of the README's
// markers.
func readmeBlock(t *testing.T, readme, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- "+name+":start -->")
	block, _, ok2 := strings.Cut(rest, "<!-- "+name+":end -->")
	if !ok || !ok2 {
		t.Fatalf("README.md lacks the %s markers", name)
	}
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```sh")
	return strings.TrimSuffix(block, "```")
}

// cleanEnv drops MUSTER_* settings of the developer's shell, so the
// walkthrough sees what a new user sees.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MUSTER_") {
			env = append(env, kv)
		}
	}
	return env
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("server did not write %s within 60s", path)
}
