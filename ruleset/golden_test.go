package ruleset

import (
	"cmp"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.nft from the compiler (review the diff!)")

// goldenCases are the testdata configs with the flags each is compiled with: testdata/NAME.nft is what
// testdata/CONFIG.yaml compiles to (CONFIG defaults to NAME).
var goldenCases = []struct {
	name   string
	opts   config.Options
	nft    Options
	config string
}{
	{"default", config.Options{}, Options{RandomFully: true}, ""},
	{"all-reserved", config.Options{NoMasqAllReservedRanges: true}, Options{RandomFully: true}, ""},
	{"ipv6", config.Options{EnableIPv6: true}, Options{RandomFully: true}, ""},
	{"masquerade-cidrs", config.Options{}, Options{RandomFully: false}, ""},
	{"empty", config.Options{}, Options{RandomFully: true}, ""},
	{"to-ports", config.Options{EnableIPv6: true}, Options{RandomFully: true,
		ToPorts: []PortRange{{First: 1024, Last: 29999}, {First: 32768, Last: 65535}}}, "ipv6"},
	{"to-ports-one-port", config.Options{}, Options{ToPorts: []PortRange{{First: 40000, Last: 40000}}}, "default"},
	{"masquerade-sources", config.Options{}, Options{RandomFully: true}, ""},
	{"masquerade-sources-to-ports", config.Options{}, Options{ToPorts: []PortRange{{First: 1024, Last: 65535}}}, "masquerade-sources"},
	{"snat", config.Options{}, Options{RandomFully: true}, ""},
	{"snat-to-ports", config.Options{}, Options{ToPorts: []PortRange{{First: 1024, Last: 29999}, {First: 40000, Last: 40000}}}, "snat"},
	{"snat-interface", config.Options{}, Options{RandomFully: true,
		Interface: InterfaceAddrs{Name: "eth0", V4: netip.MustParseAddr("192.0.2.20")}}, ""},
	{"cluster-cidrs", config.Options{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("fd00:10:64::/56"), netip.MustParsePrefix("198.18.0.0/15")}}, Options{RandomFully: true}, ""},
}

func compileGolden(t *testing.T, name string, opts config.Options, nopts Options) Ruleset {
	t.Helper()
	return Compile(testenv.ParseFile(t, filepath.Join("testdata", name+".yaml"), opts), nopts)
}

// TestGolden compares the rendering of each testdata config with the text written out in testdata.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got := compileGolden(t, cmp.Or(tc.config, tc.name), tc.opts, tc.nft).String()
			path := filepath.Join("testdata", tc.name+".nft")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("-want +got:\n%s", lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff shows where two renderings part, line by line.
func lineDiff(want, got string) string { return gocmp.Diff(want, got) }
