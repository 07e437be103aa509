"""The warehouse: one way to reach DuckDB or PostgreSQL, the source contract and the ledger
tables (SPEC §2, §3, §6), their creation and roles, and the locks that keep runners apart."""
