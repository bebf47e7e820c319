package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// invalid is the usage error of a flag value the command cannot use,
// naming the flag or the variable it came from.
func invalid(cmd *cobra.Command, name string, err error) error {
	return usageError{fmt.Errorf("%s: %w", origin(cmd.Flags().Lookup(name)), err)}
}

// usageError is a mistake in the command line or the environment: the
// process exits with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// usageArgs makes the complaints of an Args validator usage errors that
// show the command's usage line.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usagef("%w; usage: %s", err, cmd.UseLine())
		}
		return nil
	}
}

// group makes cmd a command that only groups subs: run with an unknown
// command, or without one, it reports a usage error.
func group(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.AddCommand(subs...)
	cmd.SuggestionsMinimumDistance = 2
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return usageError{errors.New(msg)}
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		return usagef("missing command, one of: %s", strings.Join(names, ", "))
	}
	return cmd
}
