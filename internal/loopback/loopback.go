// Package loopback says whether a host names this machine: where plaintext is allowed (a
// gRPC listener without internal_tls, an http issuer, a docker registry docker treats as
// insecure) because nothing leaves the machine.
package loopback

import (
	"net/netip"
	"strings"
)

// Host reports whether host is localhost or a loopback address (127.0.0.0/8, ::1, and
// 127.0.0.0/8 written as an IPv4-mapped IPv6 address). An empty host (":7001") is not: it
// listens everywhere.
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
