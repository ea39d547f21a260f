package main

import "testing"

func TestBracketIPv6(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9745":    "127.0.0.1:9745",
		"10.1.2.3:9745":     "10.1.2.3:9745",
		"[fd00::5]:9745":    "[fd00::5]:9745",
		"fd00::5:9745":      "[fd00::5]:9745", // $(HOST_IP):9745 on an IPv6 node
		"2001:db8::1:80":    "[2001:db8::1]:80",
		":9745":             ":9745",
		"":                  "",
		"localhost:9745":    "localhost:9745",
		"not:an:address:80": "not:an:address:80", // left for net.Listen to refuse
	} {
		if got := bracketIPv6(in); got != want {
			t.Errorf("bracketIPv6(%q) = %q, want %q", in, got, want)
		}
	}
}
