package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// write creates path with data, and its directory.
func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMissing(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{
		filepath.Join(dir, "ip-masq-agent"),
		filepath.Join(dir, "no", "such", "dir", "ip-masq-agent"),
	} {
		got, warns, err := Load(path, Options{NoMasqAllReservedRanges: true})
		if err != nil {
			t.Fatalf("Load(%s): %v", path, err)
		}
		want := Config{NonMasqueradeCIDRs: allReserved(), CIDRLimit: 64, ResyncInterval: 60 * time.Second}
		if d := diff(want, got); d != "" {
			t.Errorf("Load(%s) (-want +got):\n%s", path, d)
		}
		if warns != nil {
			t.Errorf("Load(%s) warnings = %v, want none", path, warns)
		}
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	write(t, path, "nonMasqueradeCIDRs:\n  - 10.0.0.0/16\nmasqLinkLocal: true\nfoo: bar\n")
	got, warns, err := Load(path, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{
		NonMasqueradeCIDRs: []CIDR{{Prefix: builtin("10.0.0.0/16").Prefix, Source: Source{File: path, Line: 2}}},
		CIDRLimit:          64, MasqLinkLocal: true, ResyncInterval: 60 * time.Second, Files: []string{path},
	}
	if d := diff(want, got); d != "" {
		t.Errorf("Load (-want +got):\n%s", d)
	}
	wantWarns := []Warning{{Source: Source{File: path, Line: 4}, Key: "foo", Msg: "unknown key, ignored"}}
	if d := diff(wantWarns, warns); d != "" {
		t.Errorf("Load warnings (-want +got):\n%s", d)
	}
}

func TestLoadFileErrorNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	write(t, path, "cidrLimit: 3\nresyncInterval: soon\n")
	_, _, err := Load(path, Options{})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Load error = %v, want an *Error", err)
	}
	if e.Source != (Source{File: path, Line: 2}) || e.Key != "resyncInterval" {
		t.Errorf("error at %v key %q, want %s line 2 key resyncInterval", e.Source, e.Key, path)
	}
}

func TestLoadTooLarge(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int64{MaxFileSize + 1, 100 << 20} {
		path := filepath.Join(dir, "ip-masq-agent")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		// A sparse file of comment characters would do; zeros are enough to be too large.
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		_, _, err = Load(path, Options{})
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Load of %d bytes: error = %v, want an *Error", size, err)
		}
		if e.Source != (Source{File: path}) || !strings.Contains(e.Msg, fmt.Sprintf("file is %d bytes, larger than masqd reads (64 MiB)", size)) ||
			!strings.Contains(e.Fix, "split a larger list into several ip-masq* files") {
			t.Errorf("Load of %d bytes: error = %v, want it too large at %s", size, err, path)
		}
	}
}

func TestLoadAtLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip-masq-agent")
	data := "masqLinkLocal: true\n"
	write(t, path, data+strings.Repeat("#", MaxFileSize-len(data)))
	got, _, err := Load(path, Options{})
	if err != nil {
		t.Fatalf("Load of exactly MaxFileSize: %v", err)
	}
	if !got.MasqLinkLocal {
		t.Errorf("Load of exactly MaxFileSize: MasqLinkLocal = false, want true")
	}
}

func TestLoadReadError(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "ip-masq-agent")
	write(t, notDir, "masqLinkLocal: true\n")
	path := filepath.Join(notDir, "config") // a path through a file: ENOTDIR, not "missing"
	_, _, err := Load(path, Options{})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Load error = %v, want an *Error", err)
	}
	if e.Source.File != path || e.Err == nil || !strings.Contains(e.Msg, "cannot read") {
		t.Errorf("Load error = %#v, want a read error for %s wrapping the cause", e, path)
	}
	if strings.Count(err.Error(), path) != 1 {
		t.Errorf("Load error %q should name %s once", err, path)
	}
}

func TestLoadNotRegular(t *testing.T) {
	_, _, err := Load(os.DevNull, Options{})
	var e *Error
	if !errors.As(err, &e) || e.Source.File != os.DevNull || !strings.Contains(e.Msg, "not a regular file") {
		t.Errorf("Load(%s) error = %v, want: not a regular file", os.DevNull, err)
	}
}

// TestLoadConfigMapDir reads a directory laid out as a Kubernetes ConfigMap volume: each key is a symlink into
// ..data, which points at a timestamped directory.
func TestLoadConfigMapDir(t *testing.T) {
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2024_05_01_10_00_00.123")
	write(t, filepath.Join(ts, "ip-masq-agent"), "nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 100.64.0.0/10\nresyncInterval: 30s\n")
	write(t, filepath.Join(ts, "ip-masq-agent-reconciled"),
		"nonMasqueradeCIDRs:\n  - 100.64.0.0/10\n  - 172.16.0.0/12\nmasqLinkLocal: true\ncidrLimit: 80\nresyncInterval: 2m\nbar: 1\n")
	write(t, filepath.Join(ts, "unrelated"), "not: [valid\n")
	for _, link := range []struct{ name, target string }{
		{"..data", filepath.Base(ts)},
		{"ip-masq-agent", "..data/ip-masq-agent"},
		{"ip-masq-agent-reconciled", "..data/ip-masq-agent-reconciled"},
		{"unrelated", "..data/unrelated"},
		{"ip-masq-gone", "..data/ip-masq-gone"}, // dangling: skipped
	} {
		if err := os.Symlink(link.target, filepath.Join(dir, link.name)); err != nil {
			t.Fatal(err)
		}
	}
	// Names starting with ".." are skipped even when they start like a config; so are directories.
	write(t, filepath.Join(dir, "..ip-masq-agent"), "not: [valid\n")
	write(t, filepath.Join(dir, "ip-masq-subdir", "x"), "not: [valid\n")

	got, warns, err := Load(dir, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	user := filepath.Join(dir, "ip-masq-agent")
	platform := filepath.Join(dir, "ip-masq-agent-reconciled")
	want := Config{
		NonMasqueradeCIDRs: []CIDR{
			{Prefix: builtin("10.0.0.0/8").Prefix, Source: Source{File: user, Line: 2}},
			{Prefix: builtin("100.64.0.0/10").Prefix, Source: Source{File: user, Line: 3}},
			{Prefix: builtin("172.16.0.0/12").Prefix, Source: Source{File: platform, Line: 3}},
		},
		CIDRLimit:      80,
		MasqLinkLocal:  true,
		ResyncInterval: 30 * time.Second,
		Files:          []string{user, platform},
	}
	if d := diff(want, got); d != "" {
		t.Errorf("Load (-want +got):\n%s", d)
	}
	wantWarns := []Warning{{Source: Source{File: platform, Line: 7}, Key: "bar", Msg: "unknown key, ignored"}}
	if d := diff(wantWarns, warns); d != "" {
		t.Errorf("Load warnings (-want +got):\n%s", d)
	}
}

func TestLoadDirWithoutConfig(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "README"), "nothing here\n")
	write(t, filepath.Join(dir, "..data", "ip-masq-agent"), "masqLinkLocal: true\n")
	got, warns, err := Load(dir, Options{EnableIPv6: true})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, EnableIPv6: true}
	if d := diff(want, got); d != "" {
		t.Errorf("Load (-want +got):\n%s", d)
	}
	if warns != nil {
		t.Errorf("Load warnings = %v, want none", warns)
	}
}

func TestLoadDirError(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "ip-masq-a"), "masqLinkLocal: true\n")
	bad := filepath.Join(dir, "ip-masq-b")
	write(t, bad, "masqLinkLocal: true\nnonMasqueradeCIDRs: [10.0.0.1/8]\n")
	_, _, err := Load(dir, Options{})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Load error = %v, want an *Error", err)
	}
	if e.Source != (Source{File: bad, Line: 2}) || e.Key != "nonMasqueradeCIDRs[0]" || e.Fix != "write 10.0.0.0/8" {
		t.Errorf("Load error = %v, want it at %s line 2", err, bad)
	}
}

func TestLoadDirEmptyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ip-masq-agent")
	write(t, path, "")
	got, _, err := Load(dir, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{NonMasqueradeCIDRs: rfc1918(), CIDRLimit: 64, ResyncInterval: 60 * time.Second, Files: []string{path}}
	if d := diff(want, got); d != "" {
		t.Errorf("Load (-want +got):\n%s", d)
	}
}

// TestLoaderReparsesOnlyChangedFiles: a Loader gives what Load gives through a series of edits to a
// directory (a file changed, made invalid, fixed, removed; other options), and keeps the parse of every file
// whose content did not change.
func TestLoaderReparsesOnlyChangedFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "ip-masq-agent"), filepath.Join(dir, "ip-masq-agent-2")
	write(t, a, "nonMasqueradeCIDRs: [10.0.0.0/8]\nbar: 1\n")
	write(t, b, "nonMasqueradeCIDRs: [192.168.0.0/16]\n")
	var l Loader
	same := func(step string, opts Options) {
		t.Helper()
		wantCfg, wantWarns, wantErr := Load(dir, opts)
		cfg, warns, err := l.Load(dir, opts)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("%s: Loader error %v, Load error %v", step, err, wantErr)
		}
		if d := diff(wantCfg, cfg); d != "" {
			t.Errorf("%s: Loader (-Load +Loader):\n%s", step, d)
		}
		if d := diff(wantWarns, warns); d != "" {
			t.Errorf("%s: Loader warnings (-Load +Loader):\n%s", step, d)
		}
	}
	// kept is the parse of path the Loader holds now, to tell whether the next Load reuses it.
	kept := func(path string) *CIDR { return &l.parsed[path].cfg.NonMasqueradeCIDRs[0] }

	same("first load", Options{})
	before := kept(a)
	write(t, b, "nonMasqueradeCIDRs: [192.168.0.0/16, 172.16.0.0/12]\n")
	same("one file changed", Options{})
	if kept(a) != before {
		t.Errorf("the unchanged file was parsed again")
	}
	if l.parsed[b].cfg.NonMasqueradeCIDRs[1].Prefix.String() != "172.16.0.0/12" {
		t.Errorf("the changed file's parse is not its new content: %v", l.parsed[b].cfg.NonMasqueradeCIDRs)
	}
	write(t, b, "nonMasqueradeCIDRs: [not-a-cidr]\n")
	same("one file invalid", Options{})
	write(t, b, "nonMasqueradeCIDRs: [192.168.0.0/16]\n")
	same("fixed", Options{})
	same("other options", Options{EnableIPv6: true, NoMasqAllReservedRanges: true})
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	same("one file removed", Options{})
	if _, ok := l.parsed[b]; ok {
		t.Errorf("the Loader still holds the parse of a removed file")
	}
}
