package textutil

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		giveS string
		giveN int
		want  string
	}{
		{name: "short", giveS: "abc", giveN: 3, want: "abc"},
		{name: "cut", giveS: "abcdef", giveN: 3, want: "abc..."},
		{name: "at a rune boundary", giveS: "aé", giveN: 2, want: "a..."},
		{name: "nothing left", giveS: "é", giveN: 1, want: "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Truncate(tt.giveS, tt.giveN))
		})
	}
}
