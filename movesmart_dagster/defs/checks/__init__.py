"""Data-quality asset checks on the tables (DuckDB over the Parquet files)."""
