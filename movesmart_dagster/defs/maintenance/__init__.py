"""Table maintenance under Dagster: the library functions of `tables/maintenance.py`, scheduled.

Why here and in three parts: compaction works on one closed day (a partition of the tables), so it
is a daily-partitioned asset whose materialization says what it did to that day; the days still
open are compacted every hour by an unpartitioned asset (the stream adds files to them all day);
snapshot expiry and orphan removal work on a whole table's history, so they are one unpartitioned
asset run every hour. A per-(table, day) check says whether a closed day holds more files than its size needs.
"""
