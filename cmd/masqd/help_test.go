package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/masqd/masqd/internal/testenv"
)

// TestHelp: --help, -h and masqd help print the usage to stdout and exit 0; masqd help COMMAND is that
// command's --help; an unknown flag or command is an error on stderr, exit 2.
func TestHelp(t *testing.T) {
	_, rootHelp, _ := runArgs(t, "--help")
	for _, tc := range []struct {
		args []string
		want string // the usage's first line
		same string // equal to what this command's --help printed
	}{
		{[]string{"--help"}, "Usage: masqd [flags]", ""},
		{[]string{"-h"}, "Usage: masqd [flags]", rootHelp},
		{[]string{"help"}, "Usage: masqd [flags]", rootHelp},
		{[]string{"help", "help"}, "Usage: masqd [flags]", rootHelp},
		{[]string{"help", "check"}, "Usage: masqd check", "check"},
		{[]string{"help", "explain"}, "Usage: masqd explain", "explain"},
		{[]string{"help", "status"}, "Usage: masqd status", "status"},
		{[]string{"help", "completion"}, "Usage: masqd completion", "completion"},
	} {
		code, out, errOut := runArgs(t, tc.args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, tc.want) {
			t.Errorf("masqd %v: exit %d, stderr %q, stdout:\n%s\nwant exit 0 and %q", tc.args, code, errOut, out, tc.want)
		}
		switch {
		case tc.same == "":
		case strings.HasPrefix(tc.same, "Usage"):
			if out != tc.same {
				t.Errorf("masqd %v differs from masqd --help", tc.args)
			}
		default:
			if _, cmdHelp, _ := runArgs(t, tc.same, "--help"); out != cmdHelp {
				t.Errorf("masqd %v differs from masqd %s --help", tc.args, tc.same)
			}
		}
	}
	if !strings.Contains(rootHelp, "  -dry-run") || !strings.Contains(rootHelp, "completion SHELL") {
		t.Errorf("masqd --help lacks the flags or the commands:\n%s", rootHelp)
	}
	for _, args := range [][]string{{"help", "nope"}, {"help", "check", "status"}, {"--nope"}, {"completion"}, {"completion", "tcsh"}} {
		code, out, errOut := runArgs(t, args...)
		if code != 2 || out != "" || errOut == "" {
			t.Errorf("masqd %v: exit %d, stdout %q, stderr %q; want 2 and an error on stderr", args, code, out, errOut)
		}
	}
}

// flagsOf returns the flags a command's --help lists, as --name.
func flagsOf(t *testing.T, args ...string) []string {
	t.Helper()
	_, out, _ := runArgs(t, append(args, "--help")...)
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(out, -1) {
		flags = append(flags, "--"+m[1])
	}
	if len(flags) == 0 {
		t.Fatalf("masqd %v --help lists no flags:\n%s", args, out)
	}
	slices.Sort(flags)
	return flags
}

// TestCompletionFlags: the completion scripts offer exactly each command's flags.
func TestCompletionFlags(t *testing.T) {
	for _, tc := range []struct {
		cmd   []string
		words string
	}{
		{nil, complRootFlags},
		{[]string{"explain"}, complExplainFlags},
		{[]string{"status"}, complStatusFlags},
		{[]string{"check"}, complCheckFlags},
	} {
		words := strings.Fields(tc.words)
		slices.Sort(words)
		if want := flagsOf(t, tc.cmd...); !slices.Equal(words, want) {
			t.Errorf("masqd %v: completion offers %v, the command has %v", tc.cmd, words, want)
		}
	}
}

// TestCompletionScripts: each script is valid in its shell, and bash's completes commands, flags, flag
// values and shells. A shell that is not installed skips its subtest (a failure under MASQD_E2E=required;
// ./test installs bash, zsh and fish).
func TestCompletionScripts(t *testing.T) {
	dir := t.TempDir()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := runArgs(t, "completion", shell)
		if code != 0 || !strings.Contains(out, "masqd") {
			t.Fatalf("masqd completion %s: exit %d, stderr %q", shell, code, errOut)
		}
		path := filepath.Join(dir, "masqd."+shell)
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(shell+"-parses", func(t *testing.T) {
			testenv.RequireCommand(t, shell, shell) // Debian's package has the shell's name
			if b, err := exec.Command(shell, "-n", path).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", shell, err, b)
			}
		})
	}
	t.Run("bash-completes", func(t *testing.T) {
		testenv.RequireCommand(t, "bash", "bash")
		bashCompletes(t, filepath.Join(dir, "masqd.bash"))
	})
}

// bashCompletes checks what the bash completion script at path offers for a few command lines.
func bashCompletes(t *testing.T, path string) {
	for _, tc := range []struct {
		line string // the command line, the cursor at its end
		want string // COMPREPLY, space-separated
	}{
		{"masqd ", "explain status check help completion"},
		{"masqd ch", "check"},
		{"masqd --dry", "--dry-run"},
		{"masqd --mode ", "auto nftables iptables"},
		{"masqd completion ", "bash zsh fish"},
		{"masqd explain --ker", "--kernel"},
		{"masqd status --output ", "text json"},
		{"masqd help st", "status"},
	} {
		script := "source " + path + "\n" +
			"COMP_WORDS=(" + tc.line + "); [[ '" + tc.line + "' == *' ' ]] && COMP_WORDS+=('')\n" +
			"COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_masqd\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command("bash", "-c", script).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
			t.Errorf("%q: completes %q (%v), want %q", tc.line, got, err, tc.want)
		}
	}
}
