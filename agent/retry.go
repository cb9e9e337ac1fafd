package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// DefaultMaxResponseBytes bounds a response body read by Retry: far above any
// completion or search result.
const DefaultMaxResponseBytes = 64 << 20

// ErrResponseTooLarge is returned for a response body over
// Retry.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("response body too large")

// Retry is an http.RoundTripper that retries a request on 429, 5xx and
// timeouts with exponential backoff and full jitter, waiting at least what a
// Retry-After header asks. It sits under the OpenAI client, so every API call
// gets it and the client never sees a transient failure.
type Retry struct {
	Next http.RoundTripper // nil: http.DefaultTransport
	// MaxAttempts is the total number of tries (0: 6).
	MaxAttempts int
	// Base and MaxDelay bound the backoff (0: 500ms and 30s).
	Base, MaxDelay time.Duration
	// AttemptTimeout bounds one try, so a hung reply is retried (0: none).
	AttemptTimeout time.Duration
	// MaxResponseBytes bounds a response body, which is read into memory
	// (0: DefaultMaxResponseBytes); a longer one fails without a retry, so a
	// broken or hostile server cannot make the client allocate without bound.
	MaxResponseBytes int64
	// Retries counts the retries made (for tests and reports).
	Retries atomic.Int64
}

// RoundTrip implements http.RoundTripper.
func (r *Retry) RoundTrip(req *http.Request) (*http.Response, error) {
	next := r.Next
	if next == nil {
		next = http.DefaultTransport
	}
	attempts := r.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("retry: read request body: %w", err)
		}
		body = b
	}
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		resp, err := r.try(ctx, next, req, body)
		retry, wait := r.shouldRetry(ctx, resp, err, attempt)
		if !retry || attempt >= attempts {
			return resp, err
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		r.Retries.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (r *Retry) try(ctx context.Context, next http.RoundTripper, req *http.Request, body []byte) (*http.Response, error) {
	actx, cancel := ctx, context.CancelFunc(func() {})
	if r.AttemptTimeout > 0 {
		actx, cancel = context.WithTimeout(ctx, r.AttemptTimeout)
	}
	rq := req.Clone(actx)
	if body != nil {
		rq.Body = io.NopCloser(bytes.NewReader(body))
		rq.ContentLength = int64(len(body))
	}
	resp, err := next.RoundTrip(rq)
	if err != nil {
		cancel()
		return nil, err
	}
	// Read the body now, inside the attempt's deadline, so that a reply that
	// stalls mid-body is a retried timeout too, and release the context.
	limit := r.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	resp.Body.Close()
	cancel()
	if rerr != nil {
		return nil, fmt.Errorf("retry: read response: %w", rerr)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("retry: HTTP %d from %s: %w (over %d bytes)", resp.StatusCode, req.URL.Host, ErrResponseTooLarge, limit)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// shouldRetry decides whether to try again and how long to wait first.
func (r *Retry) shouldRetry(ctx context.Context, resp *http.Response, err error, attempt int) (bool, time.Duration) {
	if ctx.Err() != nil {
		return false, 0
	}
	base, maxd := r.Base, r.MaxDelay
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	if maxd <= 0 {
		maxd = 30 * time.Second
	}
	// Full jitter: uniform in [0, base*2^(attempt-1)], capped.
	ceil := min(base<<(attempt-1), maxd)
	wait := time.Duration(rand.Int64N(int64(ceil) + 1))
	if errors.Is(err, ErrResponseTooLarge) {
		return false, 0
	}
	if err != nil {
		// With the caller's context alive, a transport error (refused, reset,
		// attempt timeout) is transient.
		return true, wait
	}
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
		return false, 0
	}
	if ra := retryAfter(resp.Header.Get("Retry-After")); ra > 0 {
		wait = max(wait, min(ra, maxd))
	}
	return true, wait
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
