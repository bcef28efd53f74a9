package envelope

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
)

// Event ids are UUIDs (RFC 9562 version 8, the custom layout) made of a
// random per-process prefix and a counter rather than 122 fresh random bits:
// a crypto/rand read per event cost more than the rest of building a child
// event. The 60 random bits of the prefix keep ids of different processes
// apart; the counter keeps ids of one process apart.
var (
	idPrefix  [8]byte
	idCounter atomic.Uint64
)

func init() {
	var seed [16]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic("envelope: read random id prefix: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	copy(idPrefix[:], seed[:8])
	idPrefix[6] = idPrefix[6]&0x0f | 0x80 // version 8
	idCounter.Store(binary.BigEndian.Uint64(seed[8:]) >> 2)
}

// newID returns a fresh event id in the UUID text form.
func newID() string {
	var u [16]byte
	copy(u[:8], idPrefix[:])
	binary.BigEndian.PutUint64(u[8:], idCounter.Add(1))
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}
