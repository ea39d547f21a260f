package testenv

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// skipMethods are testing.TB's ways of skipping.
var skipMethods = map[string]bool{"Skip": true, "Skipf": true, "SkipNow": true}

// bareSkips returns the positions of every use of a Skip, Skipf or SkipNow method in src, except through
// this package (testenv.Skip).
func bareSkips(fset *token.FileSet, path string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok || !skipMethods[sel.Sel.Name] {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == "testenv" {
			return true
		}
		found = append(found, fmt.Sprintf("%s: %s", fset.Position(sel.Pos()), sel.Sel.Name))
		return true
	})
	return found, nil
}

// TestBareSkips: bareSkips finds what it is for, and lets the helper's calls through.
func TestBareSkips(t *testing.T) {
	src := `package p
func TestA(t *testing.T) { t.Skip("no") }
func BenchmarkB(b *testing.B) { if x { b.Skipf("%d", 1) }; f := b.SkipNow; f() }
func TestC(t *testing.T) { testenv.Skip(t, "fine"); testenv.RequireRoot(t) }
`
	got, err := bareSkips(token.NewFileSet(), "p_test.go", src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p_test.go:2:28: Skip", "p_test.go:3:40: Skipf", "p_test.go:3:65: SkipNow"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("bareSkips:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNoBareSkip: no Go file of the module skips a test except through this package, so that
// MASQD_E2E=required can never be got around.
func TestNoBareSkip(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	self, err := filepath.Abs("testenv.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != root {
				return filepath.SkipDir // another module (e2e/kubetools)
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || path == self {
			return nil
		}
		files++
		found, err := bareSkips(fset, path, nil)
		if err != nil {
			return err
		}
		for _, f := range found {
			rel, _ := filepath.Rel(root, strings.Split(f, ":")[0])
			t.Errorf("%s%s: skip through internal/testenv (Skip, RequireRoot, RequireCommand, RequireKernel, Optional), so that MASQD_E2E=required makes it a failure",
				rel, strings.TrimPrefix(f, strings.Split(f, ":")[0]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("walked %d Go files under %s: not the module", files, root)
	}
}
