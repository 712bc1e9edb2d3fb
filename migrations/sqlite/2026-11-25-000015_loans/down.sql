-- The loans' entries go and the ledger is rebuilt in its earlier shape (a column that
-- references `loans` must not outlive that table).
CREATE TABLE ledger_entries_old (
    id           TEXT PRIMARY KEY,
    supporter_id TEXT NOT NULL REFERENCES supporters (id),
    kind         TEXT NOT NULL CHECK (kind IN ('allocation', 'purchase', 'reversal', 'adjustment')),
    amount       BIGINT NOT NULL CHECK (amount <> 0),
    purchase_id  TEXT REFERENCES purchases (id),
    effective_on DATE NOT NULL,
    note         TEXT,
    recorded_by  TEXT,
    recorded_at  TIMESTAMP NOT NULL,
    CHECK ((kind = 'allocation' AND amount > 0) OR (kind = 'purchase' AND amount < 0)
        OR (kind = 'reversal' AND amount > 0) OR kind = 'adjustment'),
    CHECK ((kind IN ('purchase', 'reversal')) = (purchase_id IS NOT NULL))
);
INSERT INTO ledger_entries_old (id, supporter_id, kind, amount, purchase_id, effective_on, note, recorded_by, recorded_at)
    SELECT id, supporter_id, kind, amount, purchase_id, effective_on, note, recorded_by, recorded_at
    FROM ledger_entries WHERE loan_id IS NULL;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_old RENAME TO ledger_entries;
CREATE INDEX ledger_entries_supporter_id_idx ON ledger_entries (supporter_id, effective_on);
CREATE UNIQUE INDEX ledger_entries_one_reversal_idx ON ledger_entries (purchase_id, kind);
ALTER TABLE programmes DROP COLUMN advance_on_loan;
DROP TABLE loan_instalments;
DROP TABLE loan_approvals;
DROP TABLE loans;
DROP TABLE loan_products;
