package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// secretInput returns a NIR or an opposition code: from the command line
// when the operator put it there (warned: ps and the shell history keep
// it), otherwise the first line of stdin, prompted for on a terminal.
func (a *app) secretInput(args []string, what string) (string, error) {
	if len(args) > 0 && args[0] != "-" {
		a.secretOnCommandLine(what)
		return args[0], nil
	}
	if f, ok := a.stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintf(a.stderr, "%s: ", what)
		}
	}
	line, err := bufio.NewReader(io.LimitReader(a.stdin, 256)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the %s on stdin: %w", what, err)
	}
	if line = strings.TrimSpace(line); line == "" {
		return "", usageError(fmt.Errorf("no %s: give it on stdin (one line), or as the argument", what))
	}
	return line, nil
}

// secretOnCommandLine warns that a NIR or a code was given as an argument or
// a flag's value, where ps and the shell history keep it.
func (a *app) secretOnCommandLine(what string) {
	a.log.Warn("the " + what + " was given on the command line, where ps and the shell history keep it: give it on stdin instead")
}
