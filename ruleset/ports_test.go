package ruleset

import (
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
)

func TestPortRulesText(t *testing.T) {
	if got := PortRules(nil); got != nil {
		t.Errorf("PortRules(nil) = %v, want nil", got)
	}
	want := []string{
		"meta l4proto tcp numgen random mod 378 < 77 counter packets 0 bytes 0 masquerade to :1024-1100 random,fully-random",
		"meta l4proto tcp counter packets 0 bytes 0 masquerade to :2000-2300 random,fully-random",
		"meta l4proto udp numgen random mod 378 < 77 counter packets 0 bytes 0 masquerade to :1024-1100 random,fully-random",
		"meta l4proto udp counter packets 0 bytes 0 masquerade to :2000-2300 random,fully-random",
		"meta l4proto sctp numgen random mod 378 < 77 counter packets 0 bytes 0 masquerade to :1024-1100 random,fully-random",
		"meta l4proto sctp counter packets 0 bytes 0 masquerade to :2000-2300 random,fully-random",
	}
	var got []string
	for _, r := range PortRules([]PortRange{{First: 1024, Last: 1100}, {First: 2000, Last: 2300}}) {
		got = append(got, r.Text(Counter{}, true))
	}
	if !slices.Equal(got, want) {
		t.Errorf("-want +got:\n%s", gocmp.Diff(join(want), join(got)))
	}

	want = []string{
		"meta l4proto tcp numgen random mod 3 < 1 counter packets 0 bytes 0 masquerade to :5000",
		"meta l4proto tcp counter packets 0 bytes 0 masquerade to :6000-6001",
	}
	got = nil
	for _, r := range PortRules([]PortRange{{First: 5000, Last: 5000}, {First: 6000, Last: 6001}})[:2] {
		got = append(got, r.Text(Counter{}, false))
	}
	if !slices.Equal(got, want) {
		t.Errorf("-want +got:\n%s", gocmp.Diff(join(want), join(got)))
	}
}

func join(lines []string) string {
	var s string
	for _, l := range lines {
		s += l + "\n"
	}
	return s
}
