package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, nil, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDryRunDefault(t *testing.T) {
	code, out, errOut := runArgs(t, "--config="+filepath.Join(t.TempDir(), "absent"), "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	want := "table inet masqd {\n" +
		"\tset nonmasq4 {\n" +
		"\t\ttype ipv4_addr\n" +
		"\t\tflags interval\n" +
		"\t\telements = { 10.0.0.0/8, 169.254.0.0/16,\n" +
		"\t\t\t     172.16.0.0/12, 192.168.0.0/16 }\n" +
		"\t}\n" +
		"\n" +
		"\tchain postrouting {\n" +
		"\t\ttype nat hook postrouting priority srcnat; policy accept;\n" +
		"\t\tip daddr != @nonmasq4 fib daddr type != local counter packets 0 bytes 0 masquerade random,fully-random\n" +
		"\t}\n" +
		"}\n"
	if out != want {
		t.Errorf("stdout:\n%s\nwant\n%s", out, want)
	}
}

func TestDryRunFlags(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "ip-masq-agent")
	if err := os.WriteFile(cfg, []byte("nonMasqueradeCIDRs: [2001:db8::/32]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// IPv6 prefixes need --enable-ipv6.
	code, out, errOut := runArgs(t, "--config="+cfg, "--dry-run")
	if code != 1 || out != "" || !strings.Contains(errOut, cfg) || !strings.Contains(errOut, "--enable-ipv6") {
		t.Errorf("without --enable-ipv6: exit %d, stdout %q, stderr %q; want 1, nothing, the file and the flag", code, out, errOut)
	}
	code, out, errOut = runArgs(t, "--config="+cfg, "--dry-run", "--enable-ipv6", "--random-fully=false")
	if code != 0 || !strings.Contains(out, "elements = { 2001:db8::/32,\n\t\t\t     fe80::/10 }") ||
		!strings.Contains(out, "counter packets 0 bytes 0 masquerade\n") || strings.Contains(out, "random") {
		t.Errorf("with --enable-ipv6 --random-fully=false: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dry-run", "--once"}, "exclusive"},
		{[]string{"--cleanup", "--dry-run"}, "exclusive"},
		{[]string{"--log-format=xml", "--dry-run"}, "--log-format"},
		{[]string{"--log-level=loud", "--dry-run"}, "log-level"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--dry-run", "extra"}, `unexpected argument "extra"`},
	} {
		code, out, errOut := runArgs(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestUpstreamFlagsAccepted: ip-masq-agent's DaemonSet arguments keep working.
func TestUpstreamFlagsAccepted(t *testing.T) {
	code, _, errOut := runArgs(t, "--config=/nonexistent", "--masq-chain=IP-MASQ", "--nomasq-all-reserved-ranges",
		"--random-fully", "--v=2", "--logtostderr", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	// A test binary is built without a version stamp or VCS information: "dev", and the Go version.
	want := "masqd dev (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if code, out, _ := runArgs(t, "--version"); code != 0 || out != want {
		t.Errorf("--version: exit %d, %q, want %q", code, out, want)
	}
}

// TestReadBuild: a stamped version and revision win over what the toolchain recorded; "(devel)" is no version.
func TestReadBuild(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		what         string
		stamped, rev string
		bi           *debug.BuildInfo
		want         buildInfo
		wantString   string
	}{
		{"nothing recorded", "", "", nil, buildInfo{Version: "dev", GoVersion: runtime.Version()},
			"masqd dev (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"},
		{"go install @v0.1.0", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.1.0"}},
			buildInfo{Version: "v0.1.0", GoVersion: "go1.26.8"}, "masqd v0.1.0 (go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH + ")"},
		{"a modified checkout", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs},
			buildInfo{Version: "dev", Revision: "0123456789abcdef0123456789abcdef01234567", Modified: true, GoVersion: "go1.26.8"},
			"masqd dev (revision 0123456789abcdef0123456789abcdef01234567, modified; go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH + ")"},
		{"stamped by the justfile", "v0.1.0-3-gabc", "abc", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-2026"}, Settings: vcs},
			buildInfo{Version: "v0.1.0-3-gabc", Revision: "abc", Modified: true, GoVersion: "go1.26.8"},
			"masqd v0.1.0-3-gabc (revision abc, modified; go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH + ")"},
	} {
		got := readBuild(tc.stamped, tc.rev, tc.bi)
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.what, got, tc.want)
		}
		if s := got.String(); s != tc.wantString {
			t.Errorf("%s: %q, want %q", tc.what, s, tc.wantString)
		}
	}
}

// TestClusterCIDRFlag: --cluster-cidr, repeatable and comma-separated, is accepted by the agent and by every
// command that reads the config, and its prefixes join the non-masquerade set.
func TestClusterCIDRFlag(t *testing.T) {
	absent := "--config=" + filepath.Join(t.TempDir(), "absent")
	code, out, errOut := runArgs(t, absent, "--dry-run", "--cluster-cidr=100.64.0.0/10,fd00:10:64::/56", "--cluster-cidr", "198.18.0.0/15", "--enable-ipv6")
	if code != 0 || !strings.Contains(out, "100.64.0.0/10") || !strings.Contains(out, "198.18.0.0/15") || !strings.Contains(out, "fd00:10:64::/56") {
		t.Errorf("--dry-run: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	code, out, errOut = runArgs(t, absent, "--dry-run", "--mode=iptables", "--cluster-cidr=100.64.0.0/10")
	if code != 0 || !strings.Contains(out, "-d 100.64.0.0/10 -j RETURN") {
		t.Errorf("--dry-run --mode=iptables: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	for _, args := range [][]string{
		{"explain", absent, "--cluster-cidr=100.64.0.0/10", "100.64.0.1"},
		{"check", "--cluster-cidr=100.64.0.0/10", "testdata/cluster-cidrs.config"},
	} {
		_, _, errOut := runArgs(t, args...)
		if strings.Contains(errOut, "flag provided but not defined") || strings.Contains(errOut, "cluster-cidr") {
			t.Errorf("masqd %v: stderr %q: the flag is not accepted", args, errOut)
		}
	}
	// status reads the kernel: its usage says it takes the flag (TestCompletionFlags holds every command to it).
	if !slices.Contains(flagsOf(t, "status"), "--cluster-cidr") {
		t.Errorf("masqd status --help does not list --cluster-cidr")
	}
	code, out, errOut = runArgs(t, absent, "--dry-run", "--cluster-cidr=100.64.0.1/10")
	if code != 2 || out != "" || !strings.Contains(errOut, "write 100.64.0.0/10") {
		t.Errorf("a misaligned prefix: exit %d, stdout %q, stderr %q; want 2 and the fix", code, out, errOut)
	}
}

// TestDryRunMasqueradeSources: --dry-run prints the sources sets and rules; with --mode=iptables the key is
// refused (exit 1), naming it and the way out.
func TestDryRunMasqueradeSources(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "ip-masq-agent")
	if err := os.WriteFile(cfg, []byte("masqueradeSourceCIDRs: [10.244.0.0/16]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runArgs(t, "--config="+cfg, "--dry-run")
	if code != 0 || !strings.Contains(out, "set sources4 {") || !strings.Contains(out, "ip saddr @sources4 ip daddr != @nonmasq4") {
		t.Errorf("--dry-run: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	code, out, errOut = runArgs(t, "--config="+cfg, "--dry-run", "--mode=iptables")
	if code != 1 || out != "" || !strings.Contains(errOut, cfg+":1: masqueradeSourceCIDRs") || !strings.Contains(errOut, "--mode=nftables") {
		t.Errorf("--dry-run --mode=iptables: exit %d, stdout %q, stderr %q; want 1, nothing, the refusal", code, out, errOut)
	}
}

// TestNodeNameFlag: --node-name takes a Node's name (a DNS subdomain) and refuses anything else before
// reaching any API; --dry-run ignores it.
func TestNodeNameFlag(t *testing.T) {
	absent := "--config=" + filepath.Join(t.TempDir(), "absent")
	if code, _, errOut := runArgs(t, absent, "--dry-run", "--node-name=node-1.example"); code != 0 {
		t.Errorf("--node-name=node-1.example --dry-run: exit %d, stderr %q", code, errOut)
	}
	code, out, errOut := runArgs(t, absent, "--dry-run", "--node-name=Node_1")
	if code != 2 || out != "" || !strings.Contains(errOut, `--node-name="Node_1"`) {
		t.Errorf("--node-name=Node_1: exit %d, stdout %q, stderr %q; want 2 naming the flag", code, out, errOut)
	}
}

// TestDryRunSNAT: --dry-run prints the uplinks set and the snat rules; with --mode=iptables the keys are
// refused (exit 1), naming the key, its line and the way out.
func TestDryRunSNAT(t *testing.T) {
	code, out, errOut := runArgs(t, "--config=testdata/snat.config", "--dry-run")
	if code != 0 || !strings.Contains(out, "set uplinks {\n\t\ttype ifname\n\t\tflags interval\n\t\telements = { \"eth0\" }") ||
		!strings.Contains(out, "ip daddr != @nonmasq4 fib daddr type != local oifname @uplinks counter packets 0 bytes 0 snat ip to 203.0.113.1 random,fully-random") {
		t.Errorf("--dry-run: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	code, out, errOut = runArgs(t, "--config=testdata/snat.config", "--dry-run", "--mode=iptables")
	if code != 1 || out != "" || !strings.Contains(errOut, "testdata/snat.config:6: egressInterfaces (eth0)") || !strings.Contains(errOut, "--mode=nftables") {
		t.Errorf("--dry-run --mode=iptables: exit %d, stdout %q, stderr %q; want 1, nothing, the refusal", code, out, errOut)
	}
}

// TestDryRunFlushConntrack: flushConntrack and --flush-conntrack change no rule: --dry-run prints exactly what
// it prints without them (and what nft lists after the apply), in both modes; the flush is what happens after
// a commit, which check and explain say.
func TestDryRunFlushConntrack(t *testing.T) {
	dir := t.TempDir()
	plain, flush := filepath.Join(dir, "plain"), filepath.Join(dir, "flush")
	if err := os.WriteFile(plain, []byte("nonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flush, []byte("flushConntrack: true\nnonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"--mode=nftables", "--mode=iptables"} {
		code, want, errOut := runArgs(t, "--config="+plain, "--dry-run", mode)
		if code != 0 || want == "" {
			t.Fatalf("%s --dry-run without the flush: exit %d, stderr %q", mode, code, errOut)
		}
		for _, args := range [][]string{{"--config=" + flush}, {"--config=" + plain, "--flush-conntrack"}, {"--config=" + flush, "--flush-conntrack"}} {
			code, got, errOut := runArgs(t, append(args, "--dry-run", mode)...)
			if code != 0 || got != want || errOut != "" {
				t.Errorf("%s %v --dry-run: exit %d, stderr %q, stdout:\n%s\nwant the same as without the flush:\n%s", mode, args, code, errOut, got, want)
			}
		}
	}
}
