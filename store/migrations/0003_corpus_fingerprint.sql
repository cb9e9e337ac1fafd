-- corpus_versions: one row per corpus with a fingerprint of its content,
-- chained over every document `fireact index` adds, so cached search results
-- can be tied to the content that produced them (re-indexing changes the
-- fingerprint and so the cache namespace) and a missing corpus is found
-- without scanning the FTS table. Corpora indexed before this table get an
-- empty fingerprint here, computed from their documents on first use.
CREATE TABLE corpus_versions (
    collection  TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    docs        INTEGER NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

INSERT INTO corpus_versions (collection, fingerprint, docs, updated_at)
    SELECT collection, '', count(*), CURRENT_TIMESTAMP FROM corpus GROUP BY collection;
