"""The SQL's shape, from DuckDB's own parser (tables, columns, partition predicates), and values as Athena prints them."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .tables import _ATHENA_TYPES, CATALOG, QueryFailed

# --- the SQL's shape, from DuckDB's own parser -------------------------------------------


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _parse(con: Any, sql: str) -> dict[str, Any]:
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    if tree.get("error"):
        raise QueryFailed(f"SYNTAX_ERROR: {tree.get('error_message', 'the query does not parse')}")
    return tree


def _tables(tree: dict[str, Any], default_db: str | None) -> list[tuple[str, str]]:
    ctes = {item["key"].lower() for n in _walk(tree) if isinstance(n.get("cte_map"), dict)
            for item in n["cte_map"].get("map", [])}
    found: list[tuple[str, str]] = []
    for n in _walk(tree):
        if n.get("type") != "BASE_TABLE" or "table_name" not in n:
            continue
        schema, name, catalog = n.get("schema_name") or "", n["table_name"].lower(), n.get("catalog_name") or ""
        if catalog and catalog.lower() != CATALOG:
            raise QueryFailed(f"CATALOG_NOT_FOUND: Catalog '{catalog}' does not exist (offline: {CATALOG} only)")
        if not schema and name in ctes:
            continue
        database = (schema or default_db or "").lower()
        if not database:
            raise QueryFailed(f"SCHEMA_NOT_FOUND: no database for table '{name}': set QueryExecutionContext."
                              "Database or qualify the name (database.table)")
        if (database, name) not in found:
            found.append((database, name))
    return found


def _referenced_columns(tree: dict[str, Any]) -> set[str] | None:
    """Column names the query names; ``None`` when it selects ``*`` (every column is read)."""
    names: set[str] = set()
    for n in _walk(tree):
        if n.get("class") == "STAR":
            return None
        if n.get("class") == "COLUMN_REF":
            names.add(n["column_names"][-1].lower())
    return names


def _constant(node: dict[str, Any]) -> str | None:
    if node.get("class") != "CONSTANT":
        return None
    lit = node.get("literal") or node.get("value") or {}
    if isinstance(lit, dict):
        for key in ("text", "value"):
            if key in lit and lit[key] is not None:
                return str(lit[key])
    return None


def _predicates(tree: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(column, operator, constants) of the conjuncts of every WHERE clause."""
    out: list[tuple[str, str, list[str]]] = []

    def conjuncts(expr: dict[str, Any]):
        if expr.get("type") == "CONJUNCTION_AND":
            for child in expr.get("children", []):
                yield from conjuncts(child)
        else:
            yield expr

    for n in _walk(tree):
        where = n.get("where_clause") if isinstance(n, dict) else None
        if not isinstance(where, dict):
            continue
        for c in conjuncts(where):
            kind = c.get("type", "")
            if c.get("class") == "COMPARISON" and c["left"].get("class") == "COLUMN_REF":
                value = _constant(c["right"])
                if value is not None:
                    out.append((c["left"]["column_names"][-1].lower(), kind, [value]))
            elif kind == "COMPARE_IN" and c["children"][0].get("class") == "COLUMN_REF":
                values = [_constant(x) for x in c["children"][1:]]
                if all(v is not None for v in values):
                    out.append((c["children"][0]["column_names"][-1].lower(), kind, values))  # type: ignore[arg-type]
            elif kind == "COMPARE_BETWEEN" and c.get("input", {}).get("class") == "COLUMN_REF":
                low, high = _constant(c.get("lower", {})), _constant(c.get("upper", {}))
                if low is not None and high is not None:
                    out.append((c["input"]["column_names"][-1].lower(), kind, [low, high]))
    return out


def _cmp(a: str, b: str) -> int:
    try:
        x, y = float(a), float(b)
        return (x > y) - (x < y)
    except ValueError:
        return (a > b) - (a < b)


def _holds(v: str, op: str, consts: list[str]) -> bool:
    """Whether a partition value satisfies one predicate (unknown operators keep the partition)."""
    first = _cmp(v, consts[0])
    return {"COMPARE_EQUAL": first == 0, "COMPARE_NOTEQUAL": first != 0, "COMPARE_LESSTHAN": first < 0,
            "COMPARE_LESSTHANOREQUALTO": first <= 0, "COMPARE_GREATERTHAN": first > 0,
            "COMPARE_GREATERTHANOREQUALTO": first >= 0,
            "COMPARE_IN": any(_cmp(v, c) == 0 for c in consts),
            "COMPARE_BETWEEN": first >= 0 and len(consts) > 1 and _cmp(v, consts[1]) <= 0}.get(op, True)


def _keeps(values: dict[str, str], predicates: list[tuple[str, str, list[str]]]) -> bool:
    lowered = {k.lower(): v for k, v in values.items()}
    return all(_holds(lowered[c], op, consts) for c, op, consts in predicates if lowered.get(c) is not None)


# --- values as Athena prints them ----------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value == value else "NaN"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if isinstance(value, date | Decimal):
        return str(value)
    return str(value)


def _athena_names(con: Any, sql: str, names: list[str]) -> list[str]:
    """Athena names an unaliased expression ``_col<i>`` (DuckDB would say ``count_star()``)."""
    try:
        node = _parse(con, sql)["statements"][0]["node"]
    except (QueryFailed, KeyError, IndexError):
        return names
    while node.get("type") == "SET_OPERATION_NODE":
        node = node.get("left") or {}
    items = node.get("select_list") or []
    if len(items) != len(names) or any(i.get("class") == "STAR" for i in items):
        return names
    out = []
    for i, (item, name) in enumerate(zip(items, names, strict=True)):
        if item.get("alias") or item.get("class") == "COLUMN_REF":
            out.append(name)
        else:
            out.append(f"_col{i}")
    return out


def _athena_type(duck_type: str) -> str:
    t = str(duck_type).upper().strip('"')
    if t.startswith("DECIMAL"):
        return "decimal"
    return _ATHENA_TYPES.get(t, t.lower())


