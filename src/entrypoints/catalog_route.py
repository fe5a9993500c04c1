"""GET /catalog: every table's declaration as one JSON document, for clients that build grids and forms.

The OpenAPI document describes the columns as JSON Schema, but not the table's group, its keys,
its references as structured values, nor which tables point back at it; a client (the web
console first) needs those to link rows and count their dependents. This answers them from the
same catalog the routes are made from, and the column checks through the same `column_schema`
as /openapi.json, so the two cannot disagree. It holds names and rules, never rows, but it sits
behind the API keys like the tables it describes, and it tells the caller what its key may do.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from domain.schema import MISSING, Catalog, Column, Table
from entrypoints.http import JSONResponse
from entrypoints.openapi import column_schema


def describe_column(table: Table, column: Column) -> dict[str, Any]:
    return {
        "name": column.name,
        "type": column.type_name,
        "nullable": column.nullable,
        "required": column.required,
        "writable": column.writable and not table.read_only,
        "system": table.system.role_of(column.name) if column.system else None,
        "generated": column.generated,
        "default": None if column.default is MISSING else column.default,
        "description": column.description,
        "schema": column_schema(column),  # the checks, exactly as /openapi.json states them
    }


def describe_table(table: Table, catalog: Catalog) -> dict[str, Any]:
    return {
        "name": table.name,
        "group": table.group,
        "description": table.description,
        "read_only": table.read_only,
        "primary_key": list(table.primary_key),
        "natural_key": list(table.natural_key),
        "unique_natural_key": table.unique_natural_key,  # false: it may repeat (disposition=append)
        "soft_delete": table.soft_delete,
        "key_column": table.key_column,  # the column of /api/{table}/{key}, or null
        "unique": [list(columns) for columns in table.unique],
        "system_columns": {role: getattr(table.system, role) for role in
                           ("source", "batch_id", "version", "created_at", "updated_at")},  # deleted_at: in columns
        "columns": [describe_column(table, c) for c in table.columns],
        # where a row's versions and claims are read (/api/{table}/{key}/history, .../claims), if kept
        "history": table.history_name if table.history else None,
        "claims": table.keeps_claims,
        # `name` is what an embed names the reference by: select=*,airports!origin(name)
        "references": [{"name": fk.name, "columns": list(fk.columns), "table": fk.target,
                        "target_columns": list(fk.target_columns), "soft": fk.soft} for fk in table.foreign_keys],
        "referenced_by": [{"name": fk.name, "table": other.name, "columns": list(fk.columns),
                           "target_columns": list(fk.target_columns), "soft": fk.soft}
                          for other, fk in catalog.referencing(table.name)],
    }


def install_catalog_route(app: FastAPI, catalog: Catalog) -> None:
    tables = [describe_table(t, catalog) for t in catalog]  # the catalog is fixed for the app's life

    @app.get("/catalog", tags=["service"], operation_id="catalog", responses={200: {
        "description": "Every table's declaration: group, keys, columns with their checks (as JSON Schema), "
                       "references both ways; and `access`, what the caller's key may do (read or write)."}})
    def read_catalog(request: Request) -> JSONResponse:
        # The key middleware leaves the role in the scope; with no keys configured, everyone writes.
        access = request.scope.get("state", {}).get("role", "write")
        return JSONResponse({"access": access, "max_rows": request.app.state.settings.max_rows, "tables": tables})
