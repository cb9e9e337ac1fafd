package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NormalizeQuery is the cache key of a tool query: lower case with runs of
// white space folded to one space, so "Paris " and "paris" share a result.
func NormalizeQuery(q string) string {
	return strings.Join(strings.Fields(strings.ToLower(q)), " ")
}

// CacheGet looks up a cached tool result by backend and query (normalised
// here). It counts the lookup as a hit or a miss for CacheStats. ok is false on
// a miss.
func (s *Store) CacheGet(ctx context.Context, backend, query string) (entry CacheEntry, ok bool, err error) {
	key := NormalizeQuery(query)
	now := time.Now().UTC()
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var last sql.NullTime
		err := tx.QueryRowContext(ctx, `UPDATE tool_cache SET hits = hits + 1, last_hit_at = ?
			WHERE backend = ? AND query = ?
			RETURNING backend, query, result, created_at, hits, last_hit_at`, now, backend, key).Scan(
			&entry.Backend, &entry.Query, &entry.Result, &entry.CreatedAt, &entry.Hits, &last)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			ok = false
		case err != nil:
			return err
		default:
			ok = true
			entry.LastHitAt = timeOrZero(last)
		}
		col := "misses"
		if ok {
			col = "hits"
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO cache_stats (backend, `+col+`) VALUES (?, 1)
			ON CONFLICT (backend) DO UPDATE SET `+col+` = `+col+` + 1`, backend)
		return err
	})
	if err != nil {
		return CacheEntry{}, false, fmt.Errorf("store: cache get %s %q: %w", backend, key, err)
	}
	return entry, ok, nil
}

// CachePut stores a tool result under backend and the normalised query,
// replacing an older one.
func (s *Store) CachePut(ctx context.Context, backend, query, result string) error {
	key := NormalizeQuery(query)
	_, err := s.exec(ctx, `INSERT INTO tool_cache (backend, query, result, created_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (backend, query) DO UPDATE SET result = excluded.result, created_at = excluded.created_at`,
		backend, key, result, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("store: cache put %s %q: %w", backend, key, err)
	}
	return nil
}

// CacheStats is the lookup count of one backend's cache.
type CacheStats struct {
	Backend string
	Hits    int64
	Misses  int64
	Entries int64
}

// HitRate is hits / lookups (0 with no lookups).
func (c CacheStats) HitRate() float64 {
	if c.Hits+c.Misses == 0 {
		return 0
	}
	return float64(c.Hits) / float64(c.Hits+c.Misses)
}

// CacheStats returns hit and miss counts per backend, sorted by backend; with
// backend != "" only that one.
func (s *Store) CacheStats(ctx context.Context, backend string) ([]CacheStats, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT b.backend, coalesce(cs.hits, 0), coalesce(cs.misses, 0),
		(SELECT count(*) FROM tool_cache t WHERE t.backend = b.backend)
		FROM (SELECT backend FROM cache_stats UNION SELECT backend FROM tool_cache) b
		LEFT JOIN cache_stats cs ON cs.backend = b.backend
		WHERE ? = '' OR b.backend = ? ORDER BY b.backend`, backend, backend)
	if err != nil {
		return nil, fmt.Errorf("store: cache stats: %w", err)
	}
	defer rows.Close()
	var out []CacheStats
	for rows.Next() {
		var c CacheStats
		if err := rows.Scan(&c.Backend, &c.Hits, &c.Misses, &c.Entries); err != nil {
			return nil, fmt.Errorf("store: cache stats: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: cache stats: %w", err)
	}
	return out, nil
}

// CacheEntries returns the cached results of the given backends (cache
// namespaces) ordered by backend and query, without counting lookups: the
// recorded observations that noise draws its "random" replacements from.
func (s *Store) CacheEntries(ctx context.Context, backends []string) ([]CacheEntry, error) {
	var out []CacheEntry
	for _, b := range backends {
		rows, err := s.db.QueryContext(ctx, `SELECT backend, query, result, created_at, hits
			FROM tool_cache WHERE backend = ? ORDER BY query`, b)
		if err != nil {
			return nil, fmt.Errorf("store: cache entries of %s: %w", b, err)
		}
		for rows.Next() {
			var e CacheEntry
			if err := rows.Scan(&e.Backend, &e.Query, &e.Result, &e.CreatedAt, &e.Hits); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: cache entries of %s: %w", b, err)
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: cache entries of %s: %w", b, err)
		}
	}
	return out, nil
}
