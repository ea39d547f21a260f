package nft

import (
	"path/filepath"
	"testing"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
	"github.com/masqd/masqd/ruleset"
)

// TestGoldenKernel applies the configs of ruleset's golden tests and checks that nft lists exactly what the
// Ruleset renders (ruleset's TestGolden holds that rendering to the golden text, so nft lists the golden
// text), and that the table reads back as applied.
func TestGoldenKernel(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		opts         config.Options
		nft          ruleset.Options
	}{
		{"default", "default", config.Options{}, ruleset.Options{RandomFully: true}},
		{"all-reserved", "all-reserved", config.Options{NoMasqAllReservedRanges: true}, ruleset.Options{RandomFully: true}},
		{"ipv6", "ipv6", config.Options{EnableIPv6: true}, ruleset.Options{RandomFully: true}},
		{"masquerade-cidrs", "masquerade-cidrs", config.Options{}, ruleset.Options{}},
		{"empty", "empty", config.Options{}, ruleset.Options{RandomFully: true}},
		{"to-ports", "ipv6", config.Options{EnableIPv6: true}, ruleset.Options{RandomFully: true,
			ToPorts: []ruleset.PortRange{{First: 1024, Last: 29999}, {First: 32768, Last: 65535}}}},
		{"to-ports-one-port", "default", config.Options{}, ruleset.Options{ToPorts: []ruleset.PortRange{{First: 40000, Last: 40000}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testenv.ParseFile(t, filepath.Join("..", "ruleset", "testdata", tc.config+".yaml"), tc.opts)
			n := newNetns(t)
			want := ruleset.Compile(cfg, tc.nft)
			mustApply(t, n.conn, want, ruleset.Rebuilt)
			checkKernel(t, n, want)
		})
	}
}
