"""The Dagster code location: `defs` assembles what `defs/` defines, grouped by integration."""

from __future__ import annotations

import dagster as dg

defs = dg.Definitions()
