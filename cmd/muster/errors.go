package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/muster-iot/muster/client"
)

// exitError ends the program with a failure code without printing more: the
// command already said what is wrong (a broken history chain, say).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// reportError prints err for a person and returns the exit code. API errors
// print the server's message with its code and field, invalid transitions
// list the states that are allowed, and common failures get a hint on what
// to do next.
func reportError(w io.Writer, err error) int {
	var exit *exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		var b strings.Builder
		fmt.Fprintf(&b, "Error: %s", apiErr.Message)
		if apiErr.Code != "" {
			fmt.Fprintf(&b, " (code %s", apiErr.Code)
			if apiErr.Field != "" {
				fmt.Fprintf(&b, ", field %s", apiErr.Field)
			}
			b.WriteString(")")
		} else {
			fmt.Fprintf(&b, " (HTTP %d)", apiErr.Status)
		}
		fmt.Fprintln(w, b.String())
		if apiErr.Code == client.CodeInvalidTransition {
			if len(apiErr.Allowed) == 0 {
				fmt.Fprintln(w, "Allowed states: none (the current state is final)")
			} else {
				fmt.Fprintf(w, "Allowed states: %s\n", strings.Join(apiErr.Allowed, ", "))
			}
		}
	} else {
		fmt.Fprintf(w, "Error: %v\n", err)
	}
	if h := hint(err); h != "" {
		fmt.Fprintf(w, "Hint: %s\n", h)
	}
	return 1
}

// hint suggests the next step for failures people commonly run into.
func hint(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		verifyErr *tls.CertificateVerificationError
		hostErr   x509.HostnameError
	)
	switch {
	case client.HasCode(err, client.CodeUnauthorized):
		return "the token was not accepted; pass a valid one with --token or MUSTER_TOKEN (the server's first admin token is in <data-dir>/admin.token)"
	case client.HasCode(err, client.CodeForbidden):
		return "this token's role does not allow that; \"muster whoami\" shows the role"
	case client.HasCode(err, client.CodeVersionMismatch):
		return "the device changed since it was read; run the command again to apply it to the new version"
	case errors.As(err, &hostErr):
		return "the server's certificate does not name the host you connected to; use the address the certificate was issued for in --server"
	case errors.As(err, &unknownCA), errors.As(err, &verifyErr):
		return "the server's certificate is not trusted; pass --ca-file (the server writes <data-dir>/ca.pem) or set MUSTER_CA_FILE"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing is listening there; is \"muster serve\" running? Point --server or MUSTER_SERVER at it"
	}
	return ""
}
