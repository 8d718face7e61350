-- Kasa's first schema. Released migrations are never edited; later changes add new files.

-- Pump orders as last seen in the cloud's summary list, with the full order once fetched.
CREATE TABLE orders (
    order_id     TEXT PRIMARY KEY,
    plate_number TEXT NOT NULL,
    pump_no      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    summary      TEXT NOT NULL,          -- JSON OrderSummary
    detail       TEXT,                   -- JSON PumpOrder, once fetched
    seen_at      TEXT NOT NULL           -- last time the cloud listed it
);
CREATE INDEX orders_plate ON orders (plate_number);

-- Sales: the state machine's state as JSON, with the columns searches need.
CREATE TABLE sales (
    sale_id      TEXT PRIMARY KEY,
    order_id     TEXT,
    state        TEXT NOT NULL,
    total_minor  INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX sales_state ON sales (state);
CREATE INDEX sales_order ON sales (order_id);

-- Locks this register may hold in the cloud: written when a lock is requested, kept until the
-- cloud confirms it is gone (unlocked, refused, or consumed by the payment report).
CREATE TABLE locks (
    order_id     TEXT PRIMARY KEY,
    sale_id      TEXT NOT NULL,
    request_key  TEXT NOT NULL,
    lock_id      TEXT,
    state        TEXT NOT NULL CHECK (state IN ('requested', 'held')),
    expires_at   TEXT,
    updated_at   TEXT NOT NULL
);

-- The transactional outbox: every outbound operation with its idempotency key.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    lane             TEXT NOT NULL,
    sale_id          TEXT,
    kind             TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    op               TEXT NOT NULL,       -- JSON Op
    state            TEXT NOT NULL CHECK (state IN ('pending', 'done', 'parked', 'discarded')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    maybe_applied    INTEGER NOT NULL DEFAULT 0,  -- an attempt may have reached the remote side
    next_attempt_ms  INTEGER NOT NULL,    -- unix milliseconds
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    finished_at      TEXT
);
CREATE INDEX outbox_lane ON outbox (lane, state, id);
CREATE INDEX outbox_due ON outbox (state, next_attempt_ms);

-- The append-only, hash-chained journal.
CREATE TABLE journal (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    sale_id    TEXT,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX journal_sale ON journal (sale_id);

-- The journal's head, so entries cut off the end are noticed.
CREATE TABLE journal_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
);

CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
