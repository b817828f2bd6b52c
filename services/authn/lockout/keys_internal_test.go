package lockout

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn"
)

// The (account, address) key is stored: replicas of two versions and a restarted authn must
// derive the same key for the same attempt. The reference is the key's definition:
// "acct:" + base64url(SHA-256(len(lower(user)) as 8 bytes big-endian ‖ lower(user) ‖ address)).
func TestAccountAddressKeyIsStable(t *testing.T) {
	ref := func(user, addr string) string {
		user = strings.ToLower(user)
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(user)))
		h := sha256.New()
		h.Write(n[:])
		h.Write([]byte(user))
		h.Write([]byte(addr))
		return "acct:" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
	}
	l := &Lockout{}
	for _, tc := range []struct{ user, remote, addr string }{
		{"alice", "192.0.2.7:5000", "192.0.2.7"},
		{"Alice", "192.0.2.7", "192.0.2.7"},
		{"", "[2001:db8::1]:443", "2001:db8::/64"},
		{strings.Repeat("ü", 300), "198.51.100.1", "198.51.100.1"}, // longer than the stack buffer
		{"bob", "in-process", "in-process"},
	} {
		ks := l.keysOf(authn.Credentials{Username: tc.user, RemoteAddr: tc.remote})
		if ks[0].key != ref(tc.user, tc.addr) || ks[0].addr != tc.addr || ks[1].key != "addr:"+tc.addr {
			t.Errorf("keysOf(%.20q, %q) = %q, %q; want %q, %q", tc.user, tc.remote, ks[0].key, ks[1].key, ref(tc.user, tc.addr), "addr:"+tc.addr)
		}
	}
}

func BenchmarkKeysOf(b *testing.B) {
	l := &Lockout{}
	cr := authn.Credentials{Username: "alice", RemoteAddr: "192.0.2.7:5000"}
	b.ReportAllocs()
	for b.Loop() {
		_ = l.keysOf(cr)
	}
}
