package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Load reads the configuration at path, which is a file or a directory.
//
// A path that does not exist is not an error: Load returns Default(opts) with no Files, as upstream does when the
// ConfigMap is not mounted. A file is read (one larger than MaxFileSize is an error) and given to Parse.
//
// A directory is read as a set of files: every regular file (or symlink to one) whose name starts with "ip-masq",
// in name order, each parsed on its own and the results combined with Merge. Names starting with ".." (the
// internals of a Kubernetes ConfigMap volume) are skipped, and so is a file that disappears while the directory
// is read (a ConfigMap update). A directory with no such file gives Default(opts).
//
// Errors are *Error; a read error wraps the cause (errors.Is(err, fs.ErrPermission) works). Load needs
// permission to read path and nothing else.
func Load(path string, opts Options) (Config, []Warning, error) {
	var l Loader
	return l.Load(path, opts)
}

// A Loader is Load with a memory: a file whose content is the same as when the Loader last parsed it (in its
// last Load) is not parsed again. The agent loads its config on every change of any file, and a large config
// is a directory of 1 MiB files of which an edit changes one. The zero Loader is ready; it is not safe for
// concurrent use.
type Loader struct {
	parsed map[string]parsedFile // the files of the last Load, by path
	next   map[string]parsedFile // the files of the Load in progress
	// merged is the last Load of a directory, and the files it merged: when they are the same files with
	// the same content, Load gives it again without merging.
	merged      Config
	mergedFrom  []string
	mergedWarns []Warning
}

// parsedFile is one file Parse accepted, with what it gave. The content is kept as its SHA-256 only: a
// directory of 1 MiB files need not be held twice.
type parsedFile struct {
	sum      [sha256.Size]byte
	opts     Options
	cfg      Config
	warnings []Warning
}

// Load is the package's Load, parsing only the files that changed since the Loader's last Load.
func (l *Loader) Load(path string, opts Options) (Config, []Warning, error) {
	l.next = map[string]parsedFile{}
	cfg, warnings, err := l.load(path, opts)
	l.parsed, l.next = l.next, nil
	return cfg, warnings, err
}

// parse is Parse, or what Parse gave for the same path, content and options in the last Load.
func (l *Loader) parse(path string, f content, opts Options) (Config, []Warning, error) {
	if p, ok := l.parsed[path]; ok && p.opts.equal(opts) && p.sum == f.sum {
		l.next[path] = p
		return p.cfg, p.warnings, nil
	}
	cfg, warnings, err := parse(path, f.data, opts, true)
	if err == nil {
		l.next[path] = parsedFile{sum: f.sum, opts: opts, cfg: cfg, warnings: warnings}
	}
	return cfg, warnings, err
}

func (l *Loader) load(path string, opts Options) (Config, []Warning, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(opts), nil, nil
	}
	if err != nil {
		return Config{}, nil, readError(path, err)
	}
	if fi.IsDir() {
		return l.loadDir(path, opts)
	}
	if !fi.Mode().IsRegular() {
		return Config{}, nil, &Error{Source: Source{File: path}, Msg: "not a regular file",
			Fix: "point masqd at a config file or at the directory where the ConfigMap is mounted"}
	}
	data, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(opts), nil, nil
	}
	if err != nil {
		return Config{}, nil, err
	}
	return l.parse(path, data, opts)
}

// loadDir reads and merges the ip-masq* files of dir.
func (l *Loader) loadDir(dir string, opts Options) (Config, []Warning, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(opts), nil, nil
	}
	if err != nil {
		return Config{}, nil, readError(dir, err)
	}
	var (
		cfgs     []Config
		warnings []Warning
		from     []string // path and content of each file merged
		reparsed bool
	)
	for _, e := range entries { // os.ReadDir sorts by name
		name := e.Name()
		if strings.HasPrefix(name, "..") || !strings.HasPrefix(name, "ip-masq") {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path) // follows the symlinks of a ConfigMap volume
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Config{}, nil, readError(path, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		data, err := readFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Config{}, nil, err
		}
		_, cached := l.parsed[path]
		cfg, w, err := l.parse(path, data, opts)
		if err != nil {
			return Config{}, nil, err
		}
		reparsed = reparsed || !cached || l.parsed[path].sum != l.next[path].sum || !l.parsed[path].opts.equal(opts)
		cfgs = append(cfgs, cfg)
		warnings = append(warnings, w...)
		from = append(from, path)
	}
	if len(cfgs) == 0 {
		return Default(opts), warnings, nil
	}
	if !reparsed && slices.Equal(from, l.mergedFrom) {
		return l.merged, l.mergedWarns, nil
	}
	if err := Conflicts(cfgs...); err != nil {
		return Config{}, nil, err
	}
	l.merged, l.mergedFrom, l.mergedWarns = Merge(cfgs...), from, warnings
	return l.merged, warnings, nil
}

// readFile reads path, refusing one larger than MaxFileSize without reading more of it than that.
// The content is read into a string once (the parsed CIDRs are parts of it) and hashed as it is read.
func readFile(path string) (content, error) {
	f, err := os.Open(path)
	if err != nil {
		return content{}, readError(path, err)
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	if size > MaxFileSize {
		return content{}, tooLarge(path, size)
	}
	var b strings.Builder
	b.Grow(int(size) + 512) // one allocation for a regular file
	h := sha256.New()
	n, err := io.Copy(&b, io.TeeReader(io.LimitReader(f, MaxFileSize+1), h))
	if err != nil {
		return content{}, readError(path, err)
	}
	if n > MaxFileSize { // not a regular file, or one that grew
		return content{}, tooLarge(path, n)
	}
	rf := content{data: b.String()}
	h.Sum(rf.sum[:0])
	return rf, nil
}

// content is a config file's content and its SHA-256.
type content struct {
	data string
	sum  [sha256.Size]byte
}

// tooLarge is the error for a file of size bytes, more than MaxFileSize.
func tooLarge(path string, size int64) *Error {
	return &Error{Source: Source{File: path},
		Msg: fmt.Sprintf("file is %d bytes, larger than masqd reads (%d MiB); nothing was applied from it", size, MaxFileSize>>20),
		Fix: "check that --config names the config file: a million prefixes take about 25 MiB; split a larger list into several ip-masq* files of one directory"}
}

// readError is an *Error for a file that cannot be read. It names path once, even when err is an *fs.PathError
// that names it too.
func readError(path string, err error) *Error {
	reason := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		reason = pe.Op + ": " + pe.Err.Error()
	}
	return &Error{Source: Source{File: path}, Msg: fmt.Sprintf("cannot read: %s", reason), Err: err}
}
