"""Daily-partitioned analytics assets, their job, schedule and partition freshness checks."""
