package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// remoteAddr is the address of the client a request comes from, as audit events and policy
// input see it, and the TCP peer's. They differ only when the peer is a trusted proxy: then
// the proxy headers are read from the right, skipping trusted hops, and the first untrusted
// hop is the client. Everything left of that hop was written by the client itself and is
// never read (not even to find quotes), so a client cannot choose its address by sending a
// header; a hop the walk has to read but cannot makes the answer the peer.
func (g *Gateway) remoteAddr(r *http.Request) (client, peer string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	pa, err := netip.ParseAddr(host)
	if err != nil { // not an IP peer (e.g. an in-process listener): nothing to trust
		return host, host
	}
	pa = pa.Unmap().WithZone("")
	peer = pa.String()
	if !g.trusted(pa) {
		return peer, peer
	}
	xffLines, fwdLines := r.Header.Values("X-Forwarded-For"), r.Header.Values("Forwarded")
	xff, xffOK := walkHops(xffLines, parseNode, g.trusted)
	fwd, fwdOK := walkHops(fwdLines, forwardedFor, g.trusted)
	xffSet, fwdSet := len(xffLines) > 0, len(fwdLines) > 0
	switch {
	case xffSet && fwdSet:
		// Which header the proxy writes is not configured, so the other one may be entirely
		// the client's: use them only when they agree. Otherwise the client is unknown — not
		// the peer, which would let any client pass for the proxy (an address policies may
		// well trust) just by adding the header the proxy does not write.
		if xffOK && fwdOK && xff == fwd {
			return xff.String(), peer
		}
		return "", peer
	case xffSet && xffOK:
		return xff.String(), peer
	case fwdSet && fwdOK:
		return fwd.String(), peer
	}
	return peer, peer
}

func (g *Gateway) trusted(a netip.Addr) bool {
	for _, p := range g.opt.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// walkHops returns the rightmost hop of a comma-separated proxy header (its lines joined in
// order) that is not trusted, or the leftmost one when all are; false when a hop it reads is
// not an address. Commas split hops even inside quotes: no address a proxy writes holds one,
// and honouring quotes would let a client's unterminated quote swallow the proxy's hop.
func walkHops(lines []string, parse func(string) (netip.Addr, bool), trusted func(netip.Addr) bool) (netip.Addr, bool) {
	if len(lines) == 0 {
		return netip.Addr{}, false
	}
	hops := strings.Split(strings.Join(lines, ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parse(hops[i])
		if !ok {
			return netip.Addr{}, false
		}
		if i == 0 || !trusted(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// forwardedFor reads the for= parameter of one RFC 7239 Forwarded element.
func forwardedFor(element string) (netip.Addr, bool) {
	var node string
	found := false
	for _, p := range strings.Split(element, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return netip.Addr{}, false
		}
		if !strings.EqualFold(name, "for") {
			continue
		}
		if found { // a parameter given twice makes the element invalid (RFC 7239 §4)
			return netip.Addr{}, false
		}
		if node, ok = unquote(value); !ok {
			return netip.Addr{}, false
		}
		found = true
	}
	if !found {
		return netip.Addr{}, false
	}
	return parseNode(node)
}

// parseNode reads an address as proxies write it: 192.0.2.1, 192.0.2.1:80, 2001:db8::1,
// [2001:db8::1] or [2001:db8::1]:80. "unknown" and obfuscated names identify no one.
func parseNode(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	var a netip.Addr
	var err error
	switch {
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		a, err = netip.ParseAddr(s[1 : len(s)-1])
	case strings.HasPrefix(s, "["):
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(s)
		a = ap.Addr()
	default:
		if a, err = netip.ParseAddr(s); err != nil {
			var ap netip.AddrPort
			ap, err = netip.ParseAddrPort(s)
			a = ap.Addr()
		}
	}
	if err != nil || !a.IsValid() {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// unquote reads an RFC 7230 token or quoted-string.
func unquote(v string) (string, bool) {
	if !strings.HasPrefix(v, `"`) {
		return v, !strings.ContainsAny(v, "\"\\ \t")
	}
	if len(v) < 2 || !strings.HasSuffix(v, `"`) {
		return "", false
	}
	var b strings.Builder
	in := v[1 : len(v)-1]
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c == '\\' {
			if i++; i == len(in) {
				return "", false
			}
			c = in[i]
		} else if c == '"' {
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}
