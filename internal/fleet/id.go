package fleet

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// idEncoding is Crockford-like lowercase base32 without padding: ids sort in
// creation order as plain strings, which keeps primary-key inserts appending.
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// lastID is the last id NewID made in this process. Ids made within one
// millisecond follow it rather than their random bits, so that lists
// "newest first" keep creation order even for records made back to back.
// It is process state, like crypto/rand's: NewID is called from everywhere
// and the order is a property of the ids themselves.
var lastID struct {
	sync.Mutex
	b [16]byte
}

// NewID returns a new sortable identifier with the given prefix, for example
// "dev_01j9...". 48 bits of milliseconds then 80 random bits; within one
// millisecond, ids made by one process increase.
func NewID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never returns an error on supported platforms
	}
	lastID.Lock()
	if bytes.Equal(b[:6], lastID.b[:6]) && bytes.Compare(b[6:], lastID.b[6:]) <= 0 {
		b = lastID.b
		increment(b[6:])
	}
	lastID.b = b
	lastID.Unlock()
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// increment adds one to a big-endian number. 80 random bits leave room for
// any number of ids in one millisecond; at the very end it wraps around.
func increment(n []byte) {
	for i := len(n) - 1; i >= 0; i-- {
		n[i]++
		if n[i] != 0 {
			return
		}
	}
}
