// Package depstest lists a package's dependencies, for tests that keep an
// import graph honest (a client that links no server, a store that imports
// no consumer). Only tests import it.
package depstest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// List returns the import paths pkg depends on, itself included, as
// `go list -deps` prints them.
func List(tb testing.TB, pkg string) []string {
	tb.Helper()
	goTool, err := exec.LookPath("go")
	require.NoError(tb, err, "the go command lists the package's dependencies")
	out, err := exec.Command(goTool, "list", "-deps", pkg).CombinedOutput()
	require.NoError(tb, err, "go list: %s", out)
	return strings.Fields(string(out))
}

// Imports reports whether deps holds pkg or a package below it.
func Imports(deps []string, pkg string) bool {
	for _, d := range deps {
		if d == pkg || strings.HasPrefix(d, pkg+"/") {
			return true
		}
	}
	return false
}
