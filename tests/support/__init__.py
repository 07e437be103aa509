"""What the tests stand on: warehouses built once per session and cloned per test."""
