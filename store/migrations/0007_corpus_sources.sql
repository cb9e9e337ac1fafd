-- 0007: how far each corpus file has been indexed, so that `fireact index`
-- run again on the same file (after Ctrl-C, a kill or a full disk) goes on
-- after the records whose documents are already in the corpus, and a file
-- indexed to its end is not added twice. identity names the file's content
-- (size, modification time, a hash of its first MiB); a changed file is a new
-- source. records counts the records read, documents added and malformed
-- lines skipped alike; it is written in the transaction that adds the
-- documents.
CREATE TABLE corpus_sources (
    collection TEXT NOT NULL,
    source     TEXT NOT NULL,
    identity   TEXT NOT NULL,
    records    INTEGER NOT NULL,
    docs       INTEGER NOT NULL,
    skipped    INTEGER NOT NULL,
    done       INTEGER NOT NULL CHECK (done IN (0, 1)),
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (collection, source)
);
