package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/portcullis-dev/portcullis/gateway"
)

// TestTrustedProxies: the address authn, authz and the audit log see is the TCP peer's unless
// the peer is a trusted proxy, and a client can never choose it by sending headers.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	const proxy, client = "10.0.0.1:41000", "198.51.100.7"
	cases := []struct {
		name      string
		peer      string
		xff       []string // X-Forwarded-For lines
		forwarded []string // Forwarded lines
		noTrust   bool     // no trusted proxies configured
		want      string
	}{
		{name: "direct client", peer: "203.0.113.5:4000", want: "203.0.113.5"},
		{name: "spoof: untrusted peer's XFF ignored", peer: "203.0.113.5:4000", xff: []string{"1.2.3.4"}, want: "203.0.113.5"},
		{name: "spoof: untrusted peer's Forwarded ignored", peer: "203.0.113.5:4000", forwarded: []string{"for=1.2.3.4"}, want: "203.0.113.5"},
		{name: "spoof: untrusted peer claims to be a trusted proxy", peer: "203.0.113.5:4000", xff: []string{"10.0.0.7"}, want: "203.0.113.5"},
		{name: "nothing trusted", peer: proxy, xff: []string{client}, noTrust: true, want: "10.0.0.1"},
		{name: "trusted proxy without headers", peer: proxy, want: "10.0.0.1"},
		{name: "XFF one hop", peer: proxy, xff: []string{client}, want: client},
		{name: "spoof: client-written hop left of the proxy's", peer: proxy, xff: []string{"6.6.6.6, " + client}, want: client},
		{name: "spoof: client writes a trusted address", peer: proxy, xff: []string{"10.0.0.9, " + client}, want: client},
		{name: "two trusted proxies", peer: proxy, xff: []string{"6.6.6.6, " + client + ", 10.0.0.2"}, want: client},
		{name: "XFF over several lines", peer: proxy, xff: []string{"6.6.6.6", client}, want: client},
		{name: "all hops trusted", peer: proxy, xff: []string{"10.0.0.5, 10.0.0.2"}, want: "10.0.0.5"},
		{name: "XFF with port", peer: proxy, xff: []string{client + ":5555"}, want: client},
		{name: "XFF IPv6", peer: proxy, xff: []string{"2001:db8::1"}, want: "2001:db8::1"},
		{name: "XFF bracketed IPv6 with port", peer: proxy, xff: []string{"[2001:db8::1]:4711"}, want: "2001:db8::1"},
		{name: "garbage left of the client is not read", peer: proxy, xff: []string{"garbage, " + client}, want: client},
		{name: "malformed XFF", peer: proxy, xff: []string{"not-an-ip"}, want: "10.0.0.1"},
		{name: "malformed hop right of the client", peer: proxy, xff: []string{client + ", garbage"}, want: "10.0.0.1"},
		{name: "empty XFF", peer: proxy, xff: []string{""}, want: "10.0.0.1"},
		{name: "XFF empty hop", peer: proxy, xff: []string{client + ", "}, want: "10.0.0.1"},
		{name: "Forwarded quoted IPv6 with port", peer: proxy, forwarded: []string{`for="[2001:db8::1]:4711"`}, want: "2001:db8::1"},
		{name: "Forwarded quoted IPv6", peer: proxy, forwarded: []string{`for="[2001:db8:cafe::17]"`}, want: "2001:db8:cafe::17"},
		{name: "Forwarded with other parameters", peer: proxy, forwarded: []string{"for=192.0.2.60;proto=http;by=203.0.113.43"}, want: "192.0.2.60"},
		{name: "Forwarded quoted IPv4 with port", peer: proxy, forwarded: []string{`for="198.51.100.7:8080"`}, want: client},
		{name: "Forwarded case-insensitive name, trusted hop skipped", peer: proxy, forwarded: []string{`For="198.51.100.7", for=10.0.0.3`}, want: client},
		{name: "spoof: Forwarded client-written element", peer: proxy, forwarded: []string{"for=6.6.6.6", "for=" + client}, want: client},
		{name: "Forwarded unknown", peer: proxy, forwarded: []string{"for=unknown"}, want: "10.0.0.1"},
		{name: "Forwarded obfuscated", peer: proxy, forwarded: []string{"for=_hidden"}, want: "10.0.0.1"},
		{name: "Forwarded unterminated quote", peer: proxy, forwarded: []string{`for="198.51.100.7`}, want: "10.0.0.1"},
		{name: "Forwarded without for", peer: proxy, forwarded: []string{"proto=https"}, want: "10.0.0.1"},
		{name: "Forwarded for twice", peer: proxy, forwarded: []string{"for=1.2.3.4;for=" + client}, want: "10.0.0.1"},
		{name: "Forwarded quoted comma", peer: proxy, forwarded: []string{`for="1.2.3.4,198.51.100.7"`}, want: "10.0.0.1"},
		{name: "Forwarded pair without value", peer: proxy, forwarded: []string{"for"}, want: "10.0.0.1"},
		{name: "both headers agree", peer: proxy, xff: []string{client}, forwarded: []string{"for=" + client}, want: client},
		// With both headers, one may be the client's own: disagreeing, they name no one — and
		// in particular not the proxy, whose address a policy may trust.
		{name: "spoof: both headers disagree", peer: proxy, xff: []string{client}, forwarded: []string{"for=6.6.6.6"}, want: ""},
		{name: "spoof: forged XFF names a trusted hop", peer: proxy, xff: []string{"10.0.0.50"}, forwarded: []string{"for=" + client}, want: ""},
		{name: "spoof: forged Forwarded is unreadable", peer: proxy, xff: []string{client}, forwarded: []string{"for=unknown"}, want: ""},
		{name: "spoof: client's open quote on its own line", peer: proxy, forwarded: []string{`for="6.6.6.6`, "for=" + client}, want: client},
		{name: "spoof: client's open quote on the proxy's line", peer: proxy, forwarded: []string{`for="6.6.6.6, for=` + client}, want: client},
		{name: "spoof: client's trailing parameter", peer: proxy, forwarded: []string{"for=6.6.6.6;, for=" + client}, want: client},
		{name: "trusted IPv6 peer", peer: "[2001:db8:ffff::1]:443", xff: []string{client}, want: client},
		{name: "untrusted IPv6 peer", peer: "[2001:db8::99]:443", forwarded: []string{"for=" + client}, want: "2001:db8::99"},
		{name: "IPv4-mapped trusted peer", peer: "[::ffff:10.0.0.1]:80", xff: []string{client}, want: client},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, envConfig{opt: func(o *gateway.Options) {
				if !tc.noTrust {
					o.TrustedProxies = trusted
				}
			}})
			req := httptest.NewRequest("GET", "/token?service=registry.local&scope=repository:a/b:pull", nil)
			req.RemoteAddr = tc.peer
			req.SetBasicAuth("alice", "pw")
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.forwarded {
				req.Header.Add("Forwarded", v)
			}
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if got := e.authn.last.Load().GetRemoteAddr(); got != tc.want {
				t.Errorf("authn saw %q, want %q", got, tc.want)
			}
			if got := e.authz.last.GetRemoteAddr(); got != tc.want {
				t.Errorf("authz saw %q, want %q", got, tc.want)
			}
			ev := e.auditEvents(t)
			if len(ev) != 1 || ev[0]["remote_addr"] != tc.want {
				t.Fatalf("audit events %v, want remote_addr %q", ev, tc.want)
			}
			peer := netip.MustParseAddrPort(tc.peer).Addr().Unmap().String()
			if proxyAddr, _ := ev[0]["proxy_addr"].(string); (tc.want != peer && proxyAddr != peer) || (tc.want == peer && proxyAddr != "") {
				t.Errorf("proxy_addr %q, peer %q", proxyAddr, peer)
			}
		})
	}
}
