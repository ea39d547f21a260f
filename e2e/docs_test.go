//go:build linux

package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestUserDocsStandAlone: the README, docs/ and deploy/ speak of scenarios in their own words, never of the
// project's internal names for them (the "seeds" its test data was once named after).
func TestUserDocsStandAlone(t *testing.T) {
	internal := regexp.MustCompile(`(?i)\bseeds?\b|seed\d+`)
	checked := 0
	for _, root := range []string{"../README.md", "../docs", "../deploy"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			checked++
			for i, line := range strings.Split(string(data), "\n") {
				if internal.MatchString(line) {
					t.Errorf("%s:%d names an internal scenario: %s", path, i+1, strings.TrimSpace(line))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked < 10 {
		t.Errorf("checked %d files; the README, docs/ and deploy/ hold more", checked)
	}
}
