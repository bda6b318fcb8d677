package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/muster-iot/muster/client"
	"github.com/spf13/cobra"
)

// Files "muster serve" writes into its data directory on first start, so
// that the CLI on the server host works without any configuration.
const (
	addrFile  = "api.addr"
	tokenFile = "admin.token"
	caFile    = "ca.pem"
)

const defaultServer = "https://127.0.0.1:8443"

var errNoToken = errors.New("no API token: pass --token, set MUSTER_TOKEN, or run on the server host with --data-dir pointing at its data directory")

// connection is where and how the CLI reaches the server.
type connection struct {
	server string
	token  string
	caFile string // empty: the system roots
}

// resolveConnection works out the connection from flags, environment and
// the data directory, in that order of precedence.
func (g *globals) resolveConnection() (connection, error) {
	dataDir := g.setting("data-dir", "MUSTER_DATA_DIR")
	var conn connection
	var err error

	if conn.server, err = resolveServer(g.setting("server", "MUSTER_SERVER"), dataDir); err != nil {
		return conn, err
	}
	conn.token = g.setting("token", "MUSTER_TOKEN")
	if conn.token == "" {
		// The data directory's admin token belongs to the server that wrote
		// it: never send it to another server the user named.
		if given := g.setting("server", "MUSTER_SERVER"); given != "" {
			local, err := resolveServer("", dataDir)
			if err != nil {
				return conn, err
			}
			if local != conn.server {
				return conn, fmt.Errorf("%w (the admin token in %s is for %s, not %s)", errNoToken, dataDir, local, conn.server)
			}
		}
		b, err := readDataFile(dataDir, tokenFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return conn, errNoToken
		case err != nil:
			return conn, err
		}
		if conn.token = strings.TrimSpace(string(b)); conn.token == "" {
			return conn, fmt.Errorf("%s is empty: %w", filepath.Join(dataDir, tokenFile), errNoToken)
		}
	}
	conn.caFile = g.setting("ca-file", "MUSTER_CA_FILE")
	if conn.caFile == "" {
		p := filepath.Join(dataDir, caFile)
		if _, err := os.Stat(p); err == nil {
			conn.caFile = p
		}
	}
	return conn, nil
}

// resolveServer returns the API URL: the one given (https:// is assumed when
// it has no scheme), else the address the server recorded in the data
// directory, else the server's default address.
func resolveServer(given, dataDir string) (string, error) {
	return resolveURL(given, dataDir, addrFile, "https", defaultServer)
}

// resolveURL returns the URL of one of the server's listeners: the one given
// (scheme:// is assumed when it has none), else scheme:// and the address
// the server recorded in file in the data directory, else fallback.
func resolveURL(given, dataDir, file, scheme, fallback string) (string, error) {
	if given != "" {
		if !strings.Contains(given, "://") {
			given = scheme + "://" + given
		}
		return given, nil
	}
	b, err := readDataFile(dataDir, file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fallback, nil
	case err != nil:
		return "", err
	}
	addr := strings.TrimSpace(string(b))
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s holds %q, not host:port: %w", filepath.Join(dataDir, file), addr, err)
	}
	// A server listening on every interface is reached on loopback from
	// its own host, which is where the data directory is.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

func readDataFile(dataDir, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the server's %s: %w", name, err)
	}
	return b, err
}

// newClient returns an API client configured from the persistent flags.
func (g *globals) newClient(cmd *cobra.Command) (*client.Client, error) {
	conn, err := g.resolveConnection()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{
		client.WithToken(conn.token),
		client.WithUserAgent("muster-cli/1"),
	}
	if conn.caFile != "" {
		opts = append(opts, client.WithCAFile(conn.caFile))
	}
	if g.verbose {
		opts = append(opts, client.WithLogger(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))))
	}
	return client.New(conn.server, opts...)
}
