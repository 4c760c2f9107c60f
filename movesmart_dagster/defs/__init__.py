"""Dagster definitions, grouped by integration (the dagster-open-platform layout).

Each sub-package owns one integration — kafka/, streaming/, catalog/, analytics/, checks/,
alerts/, schedules/ — and `movesmart_dagster.definitions` assembles them into `defs`.
Shared names (asset keys, groups) live in `keys.py` so the packages never import each other
just to spell a key.
"""

import warnings

import dagster as dg

# multi_observable_source_asset and backfill_policy are beta, and the partition freshness checks
# are "superseded" by FreshnessPolicy — which does not look at partitions, hence their use here.
# Said once here rather than on every `dagster` command's stderr.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.SupersessionWarning)
