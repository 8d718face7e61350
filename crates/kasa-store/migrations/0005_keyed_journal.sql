-- The journal's entries are sealed with the register's key (HMAC-SHA-256), and so is its head:
-- without the key, entries cut off the end could be hidden by moving the head back. A
-- checkpoint, sealed too, is the last position a verification found good; start-up verifies
-- only what follows it.
ALTER TABLE journal_head ADD COLUMN mac TEXT;

CREATE TABLE journal_checkpoint (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL,
    mac   TEXT NOT NULL,
    at    TEXT NOT NULL
);
