-- 0006: one full-text index per corpus. Until now every corpus shared one FTS5
-- table and was filtered after MATCH, so a large corpus slowed every search of
-- every other, and the table stored each document's text a second time inside
-- FTS5. Now:
--   corpus_tables  one row per corpus; its index is the FTS5 table
--                  corpus_fts_<id> (ids keep arbitrary corpus names out of SQL
--                  identifiers).
--   corpus_docs    the documents of all corpora, stored once; each corpus_fts_<id>
--                  is a contentless index of its own rows (it keeps only the
--                  inverted index, not the text). text is the text (TEXT) or,
--                  for documents added from this schema on, the text compressed
--                  (a BLOB; see textFlateV1 in store/corpus.go), so it has no
--                  declared type.
-- The per-corpus FTS5 tables are created by the store in Go, since their names
-- depend on the data. built = 0 marks a corpus whose documents were moved here
-- by this migration and whose index is built on first use; the store sets it to
-- 1 in the same transaction that fills the index.
CREATE TABLE corpus_tables (
    id         INTEGER PRIMARY KEY,
    collection TEXT NOT NULL UNIQUE,
    built      INTEGER NOT NULL DEFAULT 0 CHECK (built IN (0, 1))
);

CREATE TABLE corpus_docs (
    id        INTEGER PRIMARY KEY,
    corpus_id INTEGER NOT NULL REFERENCES corpus_tables(id),
    title     TEXT NOT NULL,
    text      NOT NULL
);

-- Existing documents keep their ids (the old FTS rowids) and insertion order,
-- which corpus fingerprints are chained over.
INSERT INTO corpus_tables (collection)
    SELECT collection FROM corpus GROUP BY collection ORDER BY min(rowid);
INSERT INTO corpus_docs (id, corpus_id, title, text)
    SELECT c.rowid, t.id, coalesce(c.title, ''), coalesce(c.text, '')
    FROM corpus c JOIN corpus_tables t ON t.collection = c.collection
    ORDER BY c.rowid;
DROP TABLE corpus;
