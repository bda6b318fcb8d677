package fleet

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

// idEncoding is Crockford-like lowercase base32 without padding: ids sort in
// creation order as plain strings, which keeps primary-key inserts appending.
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a new sortable identifier with the given prefix, for example
// "dev_01j9...". 48 bits of milliseconds then 80 random bits.
func NewID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never returns an error on supported platforms
	}
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}
