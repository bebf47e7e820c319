package jsutil

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenOrCreate_LostRace plays the race the embedded-server tests hit
// only sometimes: the open finds nothing, another process creates it
// before this one does, and the second open finds theirs.
func TestOpenOrCreate_LostRace(t *testing.T) {
	t.Parallel()
	errNotFound, errExists, errDown := errors.New("not found"), errors.New("exists"), errors.New("down")
	var calls []string
	created := false
	open := func() (string, error) {
		calls = append(calls, "open")
		if !created {
			created = true // another process creates it now
			return "", errNotFound
		}
		return "theirs", nil
	}
	create := func() (string, error) {
		calls = append(calls, "create")
		return "", errExists
	}
	got, err := openOrCreate(open, create, errNotFound, errExists)
	require.NoError(t, err)
	assert.Equal(t, "theirs", got)
	assert.Equal(t, []string{"open", "create", "open"}, calls)

	_, err = openOrCreate(func() (string, error) { return "", errDown }, create, errNotFound, errExists)
	require.ErrorIs(t, err, errDown, "an open error other than not found is returned")
}
