-- The Redshift external schema over the Glue database that holds the six Iceberg tables.
-- Iceberg's Glue catalog keeps each table current (every commit updates its metadata
-- location): no crawler, no partitions to add; Redshift reads each table's current snapshot.
-- Rendered by movesmart_dagster/catalog/redshift.py: every placeholder is validated
-- (identifiers, IAM role ARN, region) before it is substituted; nothing else is.
-- Run it once per Redshift database; IF NOT EXISTS makes a re-run a no-op.
CREATE EXTERNAL SCHEMA IF NOT EXISTS {schema}
FROM DATA CATALOG
DATABASE '{database}'
IAM_ROLE '{iam_role}'
REGION '{region}';
