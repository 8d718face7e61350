-- The manager's search over years of sales: columns for the filters, each with an index that
-- starts with it and ends with the opening time (so a page of the newest matches is read in
-- order, not sorted), and a full-text index of the words a sale is found by. Filled for the
-- sales already stored by the register when it opens the database (`search_indexed`).
ALTER TABLE sales ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sales ADD COLUMN plate TEXT;
ALTER TABLE sales ADD COLUMN methods TEXT NOT NULL DEFAULT '';
-- The sale's document in `sales_text` (an explicit number: the implicit rowid of `sales`, whose
-- key is text, may change in a VACUUM).
ALTER TABLE sales ADD COLUMN text_doc INTEGER;

CREATE INDEX sales_created ON sales (created_ms, sale_id);
CREATE INDEX sales_plate ON sales (plate, created_ms);
CREATE INDEX sales_order_created ON sales (order_id, created_ms);
CREATE INDEX sales_total ON sales (total_minor, created_ms);
CREATE INDEX sales_state_created ON sales (state, created_ms, sale_id);
DROP INDEX IF EXISTS sales_order;
DROP INDEX IF EXISTS sales_state;

CREATE VIRTUAL TABLE sales_text USING fts5(sale_id UNINDEXED, text, tokenize = 'unicode61 remove_diacritics 2');

INSERT INTO settings (key, value) VALUES ('search_indexed', '0')
    ON CONFLICT (key) DO UPDATE SET value = '0';
