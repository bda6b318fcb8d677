package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func newSimLatencyCmd(*globals) *cobra.Command {
	var listen, upstream, addrFile string
	var delay time.Duration
	cmd := &cobra.Command{
		Use:   "latency --upstream HOST:PORT --delay 40ms",
		Short: "A TCP proxy that delays everything the upstream sends, to stand in for distance",
		Long: `latency forwards TCP connections from --listen to --upstream and holds every
chunk the upstream sends for --delay before passing it on (what the client
sends goes straight through), so each round trip through it takes --delay
longer: a region's probe behind it looks that far away. It runs until
interrupted. With --addr-file it writes the address it listens on there.`,
		Example: "  muster sim latency --listen 127.0.0.1:0 --upstream 127.0.0.1:9443 --delay 40ms --addr-file probe.addr",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			defer ln.Close()
			if addrFile != "" {
				if err := os.WriteFile(addrFile, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() { <-ctx.Done(); ln.Close() }()
			fmt.Fprintf(cmd.ErrOrStderr(), "delaying %s by %s on %s\n", upstream, delay, ln.Addr())
			return serveDelayed(ctx, ln, upstream, delay)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	cmd.Flags().StringVar(&upstream, "upstream", "", "address to forward to (required)")
	cmd.Flags().DurationVar(&delay, "delay", 0, "how long to hold what the upstream sends")
	cmd.Flags().StringVar(&addrFile, "addr-file", "", "write the listening address to this file")
	markRequired(cmd, "upstream")
	return cmd
}

// serveDelayed accepts until ln is closed.
func serveDelayed(ctx context.Context, ln net.Listener, upstream string, delay time.Duration) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() { proxyDelayed(conn, upstream, delay) })
	}
}

// proxyDelayed joins one client to the upstream: client to upstream
// straight, upstream to client delayed.
func proxyDelayed(client net.Conn, upstream string, delay time.Duration) {
	defer client.Close()
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(up, client)
		done <- struct{}{}
	}()
	go func() {
		delayedCopy(client, up, delay)
		done <- struct{}{}
	}()
	<-done
}

// delayedCopy copies src to dst, each chunk written delay after it was
// read; reading goes on meanwhile, so a delay adds latency, not a
// bandwidth limit.
func delayedCopy(dst io.Writer, src io.Reader, delay time.Duration) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{at: time.Now().Add(delay), data: buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.data); err != nil {
			for range q { // drain so the reader ends
			}
			return
		}
	}
}
