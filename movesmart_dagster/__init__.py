"""Move Smart: a real-time smart-city data platform orchestrated by Dagster.

Data flows through the package in this order:
schemas -> simulator -> streaming (Spark job) -> tables (warehouse, DuckDB) -> catalog
(Glue, Redshift) -> analytics; `defs/` holds the Dagster definitions grouped by what
they wrap, `definitions.py` assembles them, `stack/` runs the local broker and S3 endpoint.
"""
