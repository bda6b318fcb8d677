package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/muster-iot/muster/internal/pki"
)

// serverCertificate issues a fresh TLS certificate for a listener from the
// server CA. It is made at every start (it costs one signature), so host
// names can change with the flags and no leaf key is ever written to disk.
func (s *Server) serverCertificate(ctx context.Context, addr string) (tls.Certificate, error) {
	prof := pki.ServerProfile{DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}}
	hosts := s.cfg.TLSHosts
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		hosts = append(hosts[:len(hosts):len(hosts)], host)
	}
	if name, err := os.Hostname(); err == nil {
		prof.DNSNames = append(prof.DNSNames, name)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				prof.IPs = append(prof.IPs, ip)
			}
		} else {
			prof.DNSNames = append(prof.DNSNames, h)
		}
	}
	key, err := pki.GenerateKey(pki.KeyAlgorithm("ecdsa-p256"))
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := s.cas.server.Issue(ctx, prof, key.Public())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue TLS certificate for %s: %w", addr, err)
	}
	return tls.Certificate{
		Certificate: [][]byte{cert.Raw, s.cas.server.Certificate().Raw},
		PrivateKey:  key,
		Leaf:        cert,
	}, nil
}

// writeFileAtomic replaces path so that readers never see half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
