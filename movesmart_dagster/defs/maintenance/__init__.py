"""Table maintenance under Dagster: the library functions of `tables/maintenance.py`, scheduled.

Why here and in two parts: compaction works on one closed day (a partition of the tables), so it
is a daily-partitioned asset whose materialization says what it did to that day; snapshot expiry
and orphan removal work on a whole table's history, so they are one unpartitioned asset run once
a day. A per-(table, day) check says whether a closed day holds more files than its size needs.
"""
