package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/masqd/masqd/config"
	"github.com/masqd/masqd/ruleset"
)

// newFlagSet returns a FlagSet that prints nothing itself: its caller prints the usage to stdout when help is
// asked for (flag.ErrHelp, exit 0), and other errors to stderr (exit 2).
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// command is an operator command's flags: the agent's config flags (so that it reads the config as the agent
// does), and its own, added to fs before parse.
type command struct {
	name, usage string
	fs          *flag.FlagSet
	path        string
	cfg         config.Options
	nft         ruleset.Options
}

func newCommand(name, usage string) *command {
	c := &command{name: name, usage: usage, fs: newFlagSet(name)}
	addConfigFlags(c.fs, &c.path, &c.cfg, &c.nft)
	return c
}

// parse parses args and returns the operands. When ok is false the command is done, with exit status code:
// 0 after --help (the usage printed on stdout), 2 for a bad flag (the error printed on stderr).
func (c *command) parse(args []string, stdout, stderr io.Writer) (operands []string, code int, ok bool) {
	operands, err := parseCommand(c.fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, c.fs, c.usage)
		return nil, 0, false
	case err != nil:
		return nil, c.fail(stderr, "%v", err), false
	}
	return operands, 0, true
}

// fail prints "NAME: message" on stderr and returns exit status 2.
func (c *command) fail(stderr io.Writer, format string, a ...any) int {
	fmt.Fprintf(stderr, c.name+": "+format+"\n", a...)
	return 2
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
