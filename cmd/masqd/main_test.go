package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
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
	if code, out, _ := runArgs(t, "--version"); code != 0 || out != "masqd dev\n" {
		t.Errorf("--version: exit %d, %q", code, out)
	}
}
