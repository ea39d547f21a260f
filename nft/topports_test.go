package nft

import (
	"slices"
	"testing"
)

func TestToPortsRulesText(t *testing.T) {
	if got := ToPortsRules(nil, true); got != nil {
		t.Errorf("ToPortsRules(nil) = %v, want nil", got)
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
	for _, r := range ToPortsRules([]PortRange{{1024, 1100}, {2000, 2300}}, true) {
		got = append(got, r.Text)
	}
	if !slices.Equal(got, want) {
		t.Errorf("-want +got:\n%s", lineDiff(join(want), join(got)))
	}

	want = []string{
		"meta l4proto tcp numgen random mod 3 < 1 counter packets 0 bytes 0 masquerade to :5000",
		"meta l4proto tcp counter packets 0 bytes 0 masquerade to :6000-6001",
	}
	got = nil
	for _, r := range ToPortsRules([]PortRange{{5000, 5000}, {6000, 6001}}, false)[:2] {
		got = append(got, r.Text)
	}
	if !slices.Equal(got, want) {
		t.Errorf("-want +got:\n%s", lineDiff(join(want), join(got)))
	}
}

func join(lines []string) string {
	var s string
	for _, l := range lines {
		s += l + "\n"
	}
	return s
}
