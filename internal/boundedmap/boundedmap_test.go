package boundedmap

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMap(t *testing.T) {
	m := New[string, int](2)
	m.Put("a", 1)
	m.Put("b", 2)
	v, ok := m.Get("a")
	assert.True(t, ok)
	assert.Equal(t, 1, v)
	m.Put("c", 3) // full: starts over
	_, ok = m.Get("a")
	assert.False(t, ok)
	v, ok = m.Get("c")
	assert.True(t, ok)
	assert.Equal(t, 3, v)
	m.Delete("c")
	_, ok = m.Get("c")
	assert.False(t, ok)
}
