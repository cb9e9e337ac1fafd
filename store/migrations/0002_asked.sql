-- 0002: the number of questions a run was asked. EM and F1 are means over the
-- questions asked (FireAct's sum(rs) / len(idxs)): an episode that errored, did
-- not finish or is missing counts as 0. 0 means unknown (runs recorded before
-- this column); their means fall back to the recorded episodes.
ALTER TABLE runs ADD COLUMN asked INTEGER NOT NULL DEFAULT 0 CHECK (asked >= 0);
