package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version and revision are stamped at build time by the justfile and the Containerfile:
//
//	-ldflags "-X main.version=v0.1.0 -X main.revision=$(git rev-parse HEAD)"
//
// They take precedence over what the Go toolchain records (debug.ReadBuildInfo), which is all a build
// without them has: `go install github.com/masqd/masqd/cmd/masqd@v0.1.0` records the module version, a build
// in a git checkout the commit and whether the tree was modified. They are only ever written by the linker.
var (
	version  string
	revision string
)

// buildInfo says which masqd this is. Every field is "" when nothing recorded it.
type buildInfo struct {
	Version   string // v0.1.0, a pseudo-version, or "dev"
	Revision  string // the VCS commit
	Modified  bool   // built from a tree with uncommitted changes
	GoVersion string // go1.26.8
}

// currentBuild is the running binary's buildInfo.
func currentBuild() buildInfo {
	bi, _ := debug.ReadBuildInfo() // nil outside a module build; readBuild copes
	return readBuild(version, revision, bi)
}

// readBuild combines the stamped version and revision with what the toolchain recorded in bi (nil when it
// recorded nothing). A stamped value wins; the module version "(devel)" (a build in a checkout without VCS
// information) counts as none. Without any version it is "dev".
func readBuild(stampedVersion, stampedRevision string, bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: stampedVersion, Revision: stampedRevision, GoVersion: runtime.Version()}
	if bi != nil {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			b.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Revision == "" {
					b.Revision = s.Value
				}
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	return b
}

// String is what `masqd --version` prints: "masqd v0.1.0 (revision 0123abc, modified; go1.26.8 linux/amd64)".
func (b buildInfo) String() string {
	var details []string
	if b.Revision != "" {
		r := "revision " + b.Revision
		if b.Modified {
			r += ", modified"
		}
		details = append(details, r)
	}
	details = append(details, b.GoVersion+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("masqd %s (%s)", b.Version, strings.Join(details, "; "))
}
