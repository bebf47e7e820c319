package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
)

// envPrefix starts the name of every environment variable the command reads.
const envPrefix = "SESSION_BUS_"

// envAnnotation is the flag annotation that names a flag's variable.
const envAnnotation = "session-bus-env"

// envFlags defines flags that each have a SESSION_BUS_* variable: the
// variable supplies the value when the command line does not (see
// [applyEnv]), and the flag's help names it: "... [$SESSION_BUS_<env>]".
type envFlags struct{ fs *pflag.FlagSet }

func (f envFlags) str(p *string, name, env, def, help string) {
	f.fs.StringVar(p, name, def, help)
	f.bind(name, env)
}

func (f envFlags) dur(p *time.Duration, name, env string, def time.Duration, help string) {
	f.fs.DurationVar(p, name, def, help)
	f.bind(name, env)
}

func (f envFlags) num(p *int, name, env string, def int, help string) {
	f.fs.IntVar(p, name, def, help)
	f.bind(name, env)
}

func (f envFlags) boolean(p *bool, name, env string, def bool, help string) {
	f.fs.BoolVar(p, name, def, help)
	f.bind(name, env)
}

func (f envFlags) bind(name, env string) {
	fl := f.fs.Lookup(name)
	fl.Usage += " [$" + envPrefix + env + "]"
	fl.Annotations = map[string][]string{envAnnotation: {envPrefix + env}}
}

// applyEnv sets each flag of fs that the command line did not set from its
// variable, when that is set. An empty variable sets a string flag to ""
// and leaves other flags alone. A value that does not parse is a usage
// error naming the variable. Flag.Changed keeps meaning "set on the command
// line" (see [origin]).
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		vars := fl.Annotations[envAnnotation]
		if len(vars) != 1 || fl.Changed {
			return
		}
		v, ok := os.LookupEnv(vars[0])
		if !ok || (v == "" && fl.Value.Type() != "string") {
			return
		}
		if err := fl.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("$%s: %w", vars[0], err))
		}
	})
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

// env returns $SESSION_BUS_<name>, for the settings that have no flag
// (the NATS password).
func env(name string) string { return os.Getenv(envPrefix + name) }

// origin names where a flag's value came from: "--name" when the command
// line set it, else its variable.
func origin(fl *pflag.Flag) string {
	if vars := fl.Annotations[envAnnotation]; !fl.Changed && len(vars) == 1 {
		return "$" + vars[0]
	}
	return "--" + fl.Name
}
