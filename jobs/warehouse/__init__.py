"""The warehouse: one way to reach DuckDB or PostgreSQL, the source contract and the ledger
tables, their creation and roles, and the locks that keep runners apart."""

from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import DELETED_TABLES, TABLES
from jobs.warehouse.schema import init_warehouse

__all__ = ["DELETED_TABLES", "TABLES", "Warehouse", "connect", "init_warehouse"]
