-- Register settings (the manager PIN's Argon2 hash and the like), and an index that lets the
-- dispatcher walk pending messages in queue order without passing delivered ones.

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE INDEX outbox_pending_order ON outbox (state, id);
