-- run_owners: the process that is running a run now, so that a second process
-- started on the same run (a resumed generate or eval while the first one is
-- still going) is refused instead of solving the same questions twice. A row
-- whose process is gone (killed with -9 on this host, or silent for a minute
-- on another) is taken over.
CREATE TABLE run_owners (
    run_id       INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    since        TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL
);
