package gateway

import (
	"bytes"
	"fmt"
	"log/slog"
	"sync"
	"testing"
)

// testLog collects the gateway's log and the test clients' debug output,
// and prints them only when the test fails: a flake on a loaded CI machine
// then explains itself.
type testLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newTestLog(t testing.TB) *testLog {
	l := &testLog{}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Logf("gateway and client log:\n%s", l.buf.String())
		}
	})
	return l
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// slog is a debug-level logger into the collection.
func (l *testLog) slog() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// client is a paho logger into the collection, prefixed with who logs.
func (l *testLog) client(who string) pahoLog { return pahoLog{l, who} }

type pahoLog struct {
	l   *testLog
	who string
}

func (p pahoLog) Println(v ...any) { fmt.Fprintln(p.l, append([]any{"paho", p.who}, v...)...) }

func (p pahoLog) Printf(format string, v ...any) {
	fmt.Fprintf(p.l, "paho "+p.who+" "+format+"\n", v...)
}
