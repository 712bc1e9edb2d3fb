-- The loans' entries go; the ledger keeps its wider shape (and its unused loan_id column, which
-- its CHECKs name) on the way down.
DELETE FROM ledger_entries WHERE loan_id IS NOT NULL;
DROP INDEX ledger_entries_loan_id_idx;
ALTER TABLE programmes DROP COLUMN advance_on_loan;
DROP TABLE loan_instalments;
DROP TABLE loan_approvals;
DROP TABLE loans;
DROP TABLE loan_products;
