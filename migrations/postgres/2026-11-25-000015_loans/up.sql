-- Micro-loans (تسهیلات خرد): products, applications that become loans, their approvals and
-- repayment schedule. Money is in the one ledger (ledger_entries), now with loans as accounts.

CREATE TABLE loan_products (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    min_amount            BIGINT NOT NULL CHECK (min_amount > 0),
    max_amount            BIGINT NOT NULL CHECK (max_amount >= min_amount),
    term_months           INTEGER NOT NULL CHECK (term_months BETWEEN 1 AND 120),
    grace_months          INTEGER NOT NULL CHECK (grace_months BETWEEN 0 AND 24),
    -- Annual fee on the declining balance, in basis points (400 = 4 %).
    fee_rate_bp           INTEGER NOT NULL CHECK (fee_rate_bp BETWEEN 0 AND 10000),
    requirement           TEXT NOT NULL CHECK (requirement IN ('none', 'permit', 'technical_course', 'permit_or_course')),
    funder_id             TEXT NOT NULL REFERENCES organisations (id),
    -- Loans above this amount need a second approver.
    second_approval_above BIGINT NOT NULL CHECK (second_approval_above > 0),
    created_at            TIMESTAMP NOT NULL
);

CREATE TABLE loans (
    id               TEXT PRIMARY KEY,
    product_id       TEXT NOT NULL REFERENCES loan_products (id),
    person_id        TEXT NOT NULL REFERENCES persons (id),
    -- Where the borrower lived when applying: the loan's scope.
    neighbourhood_id TEXT NOT NULL REFERENCES areas (id),
    amount           BIGINT NOT NULL CHECK (amount > 0),
    purpose          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('applied', 'approved', 'rejected', 'disbursed', 'settled', 'written_off')),
    -- The product's terms when applying: a later change of the product does not touch the loan.
    term_months      INTEGER NOT NULL,
    grace_months     INTEGER NOT NULL,
    fee_rate_bp      INTEGER NOT NULL,
    approvals_needed INTEGER NOT NULL CHECK (approvals_needed IN (1, 2)),
    applied_on       DATE NOT NULL,
    rejection_reason TEXT,
    disbursed_on     DATE,
    closed_on        DATE,
    version          BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX loans_neighbourhood_id_idx ON loans (neighbourhood_id, id);
CREATE INDEX loans_person_id_idx ON loans (person_id);

-- Approvals of a loan and of its write-off, one per approver.
CREATE TABLE loan_approvals (
    loan_id     TEXT NOT NULL REFERENCES loans (id),
    decision    TEXT NOT NULL CHECK (decision IN ('approval', 'write_off')),
    approver_id TEXT NOT NULL REFERENCES users (id),
    decided_at  TIMESTAMP NOT NULL,
    note        TEXT,
    PRIMARY KEY (loan_id, decision, approver_id)
);

-- The repayment schedule, made by the domain's one function at disbursement.
CREATE TABLE loan_instalments (
    loan_id   TEXT NOT NULL REFERENCES loans (id),
    number    INTEGER NOT NULL CHECK (number > 0),
    due_on    DATE NOT NULL,
    principal BIGINT NOT NULL CHECK (principal >= 0),
    fee       BIGINT NOT NULL CHECK (fee >= 0),
    PRIMARY KEY (loan_id, number)
);

-- A disbursed loan moves the household's enrolment to `financed` in programmes that say so.
ALTER TABLE programmes ADD COLUMN advance_on_loan BOOLEAN NOT NULL DEFAULT TRUE;

-- The ledger's accounts are a supporter's funds or a loan (what the borrower owes).
ALTER TABLE ledger_entries ALTER COLUMN supporter_id DROP NOT NULL;
ALTER TABLE ledger_entries ADD COLUMN loan_id TEXT REFERENCES loans (id);
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'ledger_entries'::regclass AND contype = 'c' LOOP
        EXECUTE format('ALTER TABLE ledger_entries DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
ALTER TABLE ledger_entries
    ADD CHECK (kind IN ('allocation', 'purchase', 'reversal', 'adjustment', 'disbursement', 'fee', 'repayment', 'fee_waiver', 'write_off')),
    ADD CHECK (amount <> 0),
    ADD CHECK ((supporter_id IS NULL) <> (loan_id IS NULL)),
    ADD CHECK ((kind IN ('allocation', 'purchase', 'reversal', 'adjustment')) = (supporter_id IS NOT NULL)),
    ADD CHECK ((kind = 'allocation' AND amount > 0) OR (kind = 'purchase' AND amount < 0)
        OR (kind = 'reversal' AND amount > 0) OR kind = 'adjustment'
        OR (kind IN ('disbursement', 'fee') AND amount > 0)
        OR (kind IN ('repayment', 'fee_waiver', 'write_off') AND amount < 0)),
    ADD CHECK ((kind IN ('purchase', 'reversal')) = (purchase_id IS NOT NULL));
CREATE INDEX ledger_entries_loan_id_idx ON ledger_entries (loan_id, effective_on);
