DELETE FROM ledger_entries WHERE loan_id IS NOT NULL;
DROP INDEX ledger_entries_loan_id_idx;
ALTER TABLE ledger_entries DROP COLUMN loan_id;
ALTER TABLE ledger_entries ALTER COLUMN supporter_id SET NOT NULL;
ALTER TABLE programmes DROP COLUMN advance_on_loan;
DROP TABLE loan_instalments;
DROP TABLE loan_approvals;
DROP TABLE loans;
DROP TABLE loan_products;
