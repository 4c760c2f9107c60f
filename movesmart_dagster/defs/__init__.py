"""Dagster definitions, grouped by integration (the dagster-open-platform layout).

Each sub-package owns one integration — kafka/, streaming/, catalog/, analytics/, checks/,
alerts/, schedules/ — and `movesmart_dagster.definitions` assembles them into `defs`.
Shared names (asset keys, groups) live in `keys.py` so the packages never import each other
just to spell a key.
"""
