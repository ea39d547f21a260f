package main

import (
	"strings"
	"testing"
)

// A reliability run's go test -v output: two sections (one with a blank and an indented line), other log
// lines around them.
const output = `=== RUN   TestReliabilityCrash
    reliability_crash_test.go:303: RELIABILITY.md section "crash":
        | kill | leaks |
        |---|---:|
        
          indented
    reliability_crash_test.go:310: something else
        not a section line
--- PASS: TestReliabilityCrash (1.00s)
=== RUN   TestReliabilityDrift
    reliability_drift_test.go:85: RELIABILITY.md section "drift":
        drift body
--- PASS: TestReliabilityDrift (1.00s)
`

func TestSections(t *testing.T) {
	got, err := sections(strings.NewReader(output))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"crash": "| kill | leaks |\n|---|---:|\n\n  indented\n",
		"drift": "drift body\n",
	}
	if len(got) != len(want) {
		t.Fatalf("sections: %q, want %q", got, want)
	}
	for name, body := range want {
		if got[name] != body {
			t.Errorf("section %s: %q, want %q", name, got[name], body)
		}
	}
}

func TestAssemble(t *testing.T) {
	measured := map[string]string{"crash": "new crash figures\n"}
	old := "<!-- begin drift -->\nold drift; raw output: `reliability/old.txt`.\n<!-- end drift -->\n" +
		"<!-- begin owner -->\nno raw output named\n<!-- end owner -->\n"
	doc, _, err := assemble(old, measured, "reliability/default.txt", "MACHINE", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<!-- begin crash -->\nnew crash figures\n\n_MACHINE_\n<!-- end crash -->",
		"<!-- begin drift -->\nold drift; raw output: `reliability/old.txt`.\n<!-- end drift -->",
		"<!-- begin owner -->\n_Not measured since raw outputs are kept",
		"<!-- begin churn -->\n_Not measured yet._\n<!-- end churn -->",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("document lacks %q", want)
		}
	}
	// A kept section whose raw output this run overwrote cannot stay.
	if _, _, err := assemble(old, measured, "reliability/old.txt", "MACHINE", false); err == nil || !strings.Contains(err.Error(), "drift") {
		t.Errorf("a section measured by the overwritten output: err %v, want one naming drift", err)
	}
}
