"""Spark SQL text helpers of the validation passes.

Why a module of its own: the fast path's SQL, the UDF's return type and the exact pass's
chunk filters all quote names and literals the same way; one definition keeps them alike.
"""

from __future__ import annotations


def sql_literal(text: str) -> str:
    """A Spark SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_name(name: str) -> str:
    """A backquoted Spark SQL identifier."""
    return f"`{name}`"
