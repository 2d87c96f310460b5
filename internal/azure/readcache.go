package azure

import (
	"strings"
	"sync"
	"time"
)

// readCacheTTL is how long a subnet or VNet read answers later reads of it.
const readCacheTTL = 30 * time.Second

// readCache keeps recent reads of resources that every node shares and that change
// rarely (its subnet, its VNet), so a cluster's nodes joining at once read each once,
// not once per node. Values are shared: callers must not modify them.
type readCache[T any] struct {
	mu sync.Mutex
	m  map[string]cachedRead[T] // by lower-case resource ID
}

type cachedRead[T any] struct {
	v  *T
	at time.Time
}

// get returns the value read for id less than readCacheTTL ago.
func (c *readCache[T]) get(id string, now time.Time) (*T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[strings.ToLower(id)]
	if !ok || now.Sub(e.at) >= readCacheTTL {
		return nil, false
	}
	return e.v, true
}

// put records a read of id made at now.
func (c *readCache[T]) put(id string, v *T, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedRead[T]{}
	}
	c.m[strings.ToLower(id)] = cachedRead[T]{v: v, at: now}
}
