DROP TABLE ledger_entries;
DROP TABLE purchase_lines;
DROP TABLE purchases;
DROP TABLE products;
DROP TABLE producer_links;
DROP TABLE supporter_balances;
DROP TABLE supporters;
ALTER TABLE programmes DROP COLUMN supporters_per_neighbourhood;
