package armsim

import (
	"math"
	"time"
)

// ThrottleOptions configures ARM's per-subscription token buckets. Zero values mean ARM's
// published limits: writes bucket 200 refilled at 10/s, reads bucket 250 refilled at 25/s.
type ThrottleOptions struct {
	// Disabled turns throttling off.
	Disabled bool
	// WriteBucket is the write bucket size (PUT, DELETE).
	WriteBucket int
	// WriteRefillPerSec is the write refill rate.
	WriteRefillPerSec float64
	// ReadBucket is the read bucket size (GET, including operation polls).
	ReadBucket int
	// ReadRefillPerSec is the read refill rate.
	ReadRefillPerSec float64
}

// ARM's published per-subscription limits.
const (
	DefaultWriteBucket       = 200
	DefaultWriteRefillPerSec = 10
	DefaultReadBucket        = 250
	DefaultReadRefillPerSec  = 25
)

type bucket struct {
	size   float64
	rate   float64
	tokens float64
	last   time.Time
}

type bucketPair struct{ reads, writes *bucket }

func newBucket(size int, rate float64, defSize int, defRate float64) *bucket {
	if size <= 0 {
		size = defSize
	}
	if rate <= 0 {
		rate = defRate
	}
	return &bucket{size: float64(size), rate: rate, tokens: float64(size), last: time.Now()}
}

// take removes one token; when empty it returns false and the whole seconds until one
// token is back (at least 1, like ARM's Retry-After).
func (b *bucket) take(now time.Time) (ok bool, retryAfter int, remaining int) {
	b.tokens = math.Min(b.size, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0, int(b.tokens)
	}
	wait := (1 - b.tokens) / b.rate
	return false, max(1, int(math.Ceil(wait))), 0
}

// throttleLocked charges one request to the subscription's bucket and reports the tokens
// left (-1 when throttling is disabled). Requires s.mu.
func (s *Server) throttleLocked(sub string, write bool) (int, *armError) {
	t := s.opts.Throttle
	if t.Disabled {
		return -1, nil
	}
	bp := s.throttles[lower(sub)]
	if bp == nil {
		bp = &bucketPair{
			reads:  newBucket(t.ReadBucket, t.ReadRefillPerSec, DefaultReadBucket, DefaultReadRefillPerSec),
			writes: newBucket(t.WriteBucket, t.WriteRefillPerSec, DefaultWriteBucket, DefaultWriteRefillPerSec),
		}
		s.throttles[lower(sub)] = bp
	}
	b, kind := bp.reads, "read"
	if write {
		b, kind = bp.writes, "write"
	}
	ok, after, remaining := b.take(time.Now())
	if ok {
		return remaining, nil
	}
	e := errorf(429, CodeThrottled,
		"Number of '%s' requests for subscription '%s' actor 'armsim' exceeded. Please try again after '%d' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling",
		kind, sub, after)
	e.retryAfter = after
	return 0, e
}
