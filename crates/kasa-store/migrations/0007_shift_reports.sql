-- What each stored step of a sale changed in money (payments, money given back, sales paid in
-- full with their VAT per rate, voids), written in the transaction that stores the sale. A shift
-- is every movement after the last Z report's; the X and Z reports add them up.
CREATE TABLE movements (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            TEXT NOT NULL,
    sale_id       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('payment', 'refund', 'sale', 'void')),
    refund_id     TEXT,
    method        TEXT,
    vat_rate_bp   INTEGER,
    amount_minor  INTEGER NOT NULL,
    vat_minor     INTEGER NOT NULL,
    currency      TEXT NOT NULL,
    voiding       INTEGER NOT NULL DEFAULT 0
);

-- Z reports, numbered from 1 without gaps (a number is taken in the transaction that writes
-- the report and its journal entry). Final once written.
CREATE TABLE z_reports (
    number         INTEGER PRIMARY KEY,
    closed_at      TEXT NOT NULL,
    last_movement  INTEGER NOT NULL,
    journal_seq    INTEGER NOT NULL,
    body           TEXT NOT NULL
);

CREATE TRIGGER movements_no_update BEFORE UPDATE ON movements
BEGIN SELECT RAISE(ABORT, 'movements are append-only'); END;
CREATE TRIGGER movements_no_delete BEFORE DELETE ON movements
BEGIN SELECT RAISE(ABORT, 'movements are append-only'); END;
CREATE TRIGGER z_reports_no_update BEFORE UPDATE ON z_reports
BEGIN SELECT RAISE(ABORT, 'a Z report is final'); END;
CREATE TRIGGER z_reports_no_delete BEFORE DELETE ON z_reports
BEGIN SELECT RAISE(ABORT, 'a Z report is final'); END;
