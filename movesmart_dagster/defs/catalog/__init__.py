"""The Glue catalog tables and the `dev_smartcity` external schema (Redshift or local DuckDB)."""
