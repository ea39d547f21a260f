package config

import (
	"strings"
	"testing"
)

// TestParseFlushConntrack: flushConntrack is a boolean like masqLinkLocal, off by default; --flush-conntrack
// (Options.FlushConntrack) turns it on for every config, and the file can turn it on, never off.
func TestParseFlushConntrack(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		opts  Options
		want  bool
		warns []string
		err   *wantErr
	}{
		{name: "left out", in: "masqLinkLocal: false\n"},
		{name: "empty file", in: ""},
		{name: "true", in: "flushConntrack: true\n", want: true},
		{name: "false", in: "flushConntrack: false\n"},
		{name: "null", in: "flushConntrack:\n", warns: []string{"empty, so the default stays"}},
		{name: "flag", in: "masqLinkLocal: false\n", opts: Options{FlushConntrack: true}, want: true},
		{name: "flag and true", in: "flushConntrack: true\n", opts: Options{FlushConntrack: true}, want: true},
		{name: "false does not turn the flag off", in: "flushConntrack: false\n", opts: Options{FlushConntrack: true}, want: true,
			warns: []string{"does not turn off --flush-conntrack"}},
		{name: "other case", in: "flushconntrack: true\n", want: true, warns: []string{"flushConntrack"}},
		{name: "quoted", in: "flushConntrack: \"true\"\n",
			err: &wantErr{key: "flushConntrack", line: 1, value: "true", msg: "", fix: "write flushConntrack: true, unquoted"}},
		{name: "not a boolean", in: "flushConntrack: 1\n",
			err: &wantErr{key: "flushConntrack", line: 1, value: "1", msg: "", fix: "write flushConntrack: true or flushConntrack: false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, fast := range []bool{true, false} {
				cfg, warns, err := parse(file, tt.in, tt.opts, fast)
				if tt.err != nil {
					checkError(t, err, tt.err)
					continue
				}
				if err != nil {
					t.Fatalf("fast=%v: %v", fast, err)
				}
				if cfg.FlushConntrack != tt.want {
					t.Errorf("fast=%v: FlushConntrack = %v, want %v", fast, cfg.FlushConntrack, tt.want)
				}
				if len(warns) != len(tt.warns) {
					t.Fatalf("fast=%v: warnings %v, want %q", fast, warns, tt.warns)
				}
				for i, w := range tt.warns {
					if !strings.Contains(warns[i].String(), w) {
						t.Errorf("fast=%v: warning %v, want %q", fast, warns[i], w)
					}
				}
				if d := diff(Default(tt.opts).NonMasqueradeCIDRs, cfg.NonMasqueradeCIDRs); d != "" {
					t.Errorf("fast=%v: nonMasqueradeCIDRs changed (-want +got):\n%s", fast, d)
				}
			}
		})
	}
}

// TestMergeFlushConntrack: like the other booleans, true when any file says so, whatever the order.
func TestMergeFlushConntrack(t *testing.T) {
	on, off := Config{FlushConntrack: true, Files: []string{"on"}}, Config{Files: []string{"off"}}
	for _, tt := range []struct {
		in   []Config
		want bool
	}{
		{[]Config{off}, false},
		{[]Config{on}, true},
		{[]Config{on, off}, true},
		{[]Config{off, on}, true},
		{[]Config{off, off}, false},
	} {
		if got := Merge(tt.in...).FlushConntrack; got != tt.want {
			t.Errorf("Merge(%v) FlushConntrack = %v, want %v", tt.in, got, tt.want)
		}
	}
	if !on.Equal(on) || on.Equal(off) || (Config{FlushConntrack: true}).Equal(Config{}) {
		t.Error("Equal ignores FlushConntrack")
	}
}
