-- Wrong manager PINs, counted in the database so a restart does not clear them. An attempt is
-- counted before its PIN is checked (one transaction checks the lockout and counts), so guesses
-- made in parallel cannot slip past the count. Each lockout lasts twice the one before, until a
-- right PIN.
CREATE TABLE manager_guard (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    failures         INTEGER NOT NULL DEFAULT 0,   -- counted since the last lockout or right PIN
    lockouts         INTEGER NOT NULL DEFAULT 0,   -- since the last right PIN
    locked_until_ms  INTEGER NOT NULL DEFAULT 0,   -- unix milliseconds
    refused          INTEGER NOT NULL DEFAULT 0    -- attempts refused while locked, ever
);
INSERT INTO manager_guard (id) VALUES (1);
