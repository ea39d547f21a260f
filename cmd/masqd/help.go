package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// newFlagSet returns a FlagSet that prints nothing itself: its caller prints the usage to stdout when help is
// asked for (flag.ErrHelp, exit 0), and other errors to stderr (exit 2).
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// printUsage prints usage and then fs's flags to w.
func printUsage(w io.Writer, fs *flag.FlagSet, usage string) {
	io.WriteString(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// helpMain is `masqd help [COMMAND]`: the usage of masqd or of a command, on stdout.
func helpMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		return run([]string{"--help"}, stdin, stdout, stderr)
	case len(args) > 1:
		fmt.Fprintf(stderr, "masqd help: one command at a time, not %q\n", strings.Join(args, " "))
		return 2
	}
	switch args[0] {
	case "explain", "status", "check", "completion":
		return run([]string{args[0], "--help"}, stdin, stdout, stderr)
	case "help":
		return run([]string{"--help"}, stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "masqd help: no command %q; the commands are %s\n", args[0], commandList)
	return 2
}

// commandList names masqd's commands, for errors.
const commandList = "explain, status, check, help and completion"
