package pki

import (
	"crypto/rand"
	"math/big"
)

// serialLen is the serial number length in bytes. RFC 5280 allows up to 20
// octets; 16 gives far more than the 64 random bits the CA/Browser Forum
// asks for and stays within every parser's limits.
const serialLen = 16

// randomSerial returns a positive serial whose DER encoding is exactly 16
// bytes: the top bit is cleared so it is positive without a padding byte,
// and the next bit is set so it never shrinks. 126 bits stay random, which
// makes collisions across all issued certificates negligible without
// coordination between nodes.
func randomSerial() *big.Int {
	b := make([]byte, serialLen)
	// crypto/rand.Read never fails (it aborts the program instead).
	_, _ = rand.Read(b)
	b[0] = b[0]&0x7f | 0x40
	return new(big.Int).SetBytes(b)
}
