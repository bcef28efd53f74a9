package envelope

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
)

// Event ids are random UUIDs (version 4) as before, but the 16 random bytes
// of each come from a buffer filled by one crypto/rand read per 256 ids:
// a read per event cost more than the rest of building a child event. They
// stay unguessable (the gateway's async status URLs are named by them), which
// a per-process prefix and a counter would not be.
var ids struct {
	mu   sync.Mutex
	buf  [256 * 16]byte
	next int
}

func init() { ids.next = len(ids.buf) }

// newID writes a fresh random event id in the UUID text form to s.
func newID(s *[36]byte) {
	var u [16]byte
	ids.mu.Lock()
	if ids.next == len(ids.buf) {
		if _, err := rand.Read(ids.buf[:]); err != nil {
			ids.mu.Unlock()
			panic("envelope: read random event id: " + err.Error()) // crypto/rand never fails on supported platforms
		}
		ids.next = 0
	}
	copy(u[:], ids.buf[ids.next:])
	clear(ids.buf[ids.next : ids.next+16]) // an id's bytes do not outlive their use
	ids.next += 16
	ids.mu.Unlock()
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
}
