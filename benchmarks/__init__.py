"""Benchmarks: each prints a table, and with --json a JSON object as its last line."""

from __future__ import annotations

import json

__all__ = ["rows_json"]


def rows_json(rows: list[dict]) -> str:
    """``{"rows": [...]}`` with floats rounded to 4 decimals: the --json line of a table."""
    return json.dumps({"rows": [{k: round(v, 4) if isinstance(v, float) else v
                                 for k, v in r.items()} for r in rows]})
