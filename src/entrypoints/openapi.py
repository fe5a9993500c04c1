"""JSON Schemas of each table, derived from its declaration, for /openapi.json and /docs."""

from __future__ import annotations

from typing import Any

from domain.schema import MISSING, Column, ColumnType, Table

_TYPES: dict[ColumnType, dict[str, Any]] = {
    ColumnType.TEXT: {"type": "string"},
    ColumnType.INTEGER: {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    ColumnType.BIGINT: {"type": "integer", "format": "int64"},
    ColumnType.FLOAT: {"type": "number"},
    ColumnType.NUMERIC: {"type": "number"},
    ColumnType.BOOLEAN: {"type": "boolean"},
    ColumnType.DATE: {"type": "string", "format": "date"},
    ColumnType.TIMESTAMPTZ: {"type": "string", "format": "date-time"},
    # What pydantic writes for a naive datetime too; the column's validation refuses an offset.
    ColumnType.TIMESTAMP: {"type": "string", "format": "date-time"},
    ColumnType.UUID: {"type": "string", "format": "uuid"},
    ColumnType.JSON: {},
}


def _type_schema(column: Column) -> dict[str, Any]:
    if column.type is ColumnType.ARRAY:
        return {"type": "array", "items": _type_schema(column.item_column)}
    return dict(_TYPES[column.type])


def column_schema(column: Column) -> dict[str, Any]:
    schema: dict[str, Any] = _type_schema(column)
    if column.pattern is not None:
        schema["pattern"] = f"^(?:{column.pattern})$"
    if column.choices is not None:
        schema["enum"] = list(column.choices)
    if column.ge is not None:
        schema["minimum"] = max(column.ge, schema.get("minimum", column.ge))
    if column.le is not None:
        schema["maximum"] = min(column.le, schema.get("maximum", column.le))
    if column.max_length is not None:
        schema["maxLength"] = column.max_length
    if column.gt is not None:
        schema["exclusiveMinimum"] = column.gt
    if column.lt is not None:
        schema["exclusiveMaximum"] = column.lt
    if column.type is ColumnType.NUMERIC and column.precision:
        bound = 10 ** (column.precision - (column.scale or 0))
        schema["exclusiveMaximum"] = min(bound, schema.get("exclusiveMaximum", bound))
        if column.ge is None:
            schema["exclusiveMinimum"] = max(-bound, schema.get("exclusiveMinimum", -bound))
    if column.default is not MISSING and column.default is not None:
        schema["default"] = column.default
    if column.description:
        schema["description"] = column.description
    if column.reference is not None:
        kind = "soft reference" if column.reference.soft else "references"
        note = f"{kind} {column.reference.table}"
        schema["description"] = f"{schema['description']} ({note})" if "description" in schema else note.capitalize()
    if column.system or column.generated:
        schema["readOnly"] = True
    if column.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]} if schema else {}
    return schema


def row_schema(table: Table) -> dict[str, Any]:
    """A stored row, as every read returns it."""
    return {
        "type": "object",
        "title": table.name,
        "description": table.description or f"A row of {table.name}.",
        "properties": {c.name: column_schema(c) for c in table.columns},
        "required": list(table.column_names),
    }


def insert_schema(table: Table) -> dict[str, Any]:
    """What a writer sends to create a row: writable columns, the required ones required."""
    return {
        "type": "object",
        "title": f"{table.name} (new row)",
        "properties": {c.name: column_schema(c) for c in table.writable_columns},
        "required": [c.name for c in table.writable_columns if c.required],
        "additionalProperties": False,
    }


def patch_schema(table: Table) -> dict[str, Any]:
    return {
        "type": "object",
        "title": f"{table.name} (changes)",
        "properties": {c.name: column_schema(c) for c in table.writable_columns},
        "minProperties": 1,
        "additionalProperties": False,
    }


def schema_names(table: Table) -> dict[str, str]:
    base = "".join(part.capitalize() for part in table.name.split("_"))
    return {"row": base, "insert": f"{base}Insert", "patch": f"{base}Patch"}


def components(tables: list[Table]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for table in tables:
        names = schema_names(table)
        schemas[names["row"]] = row_schema(table)
        if not table.read_only:
            schemas[names["insert"]] = insert_schema(table)
            schemas[names["patch"]] = patch_schema(table)
    schemas["Error"] = {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "details": {},
            "hint": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["code", "message", "details", "hint"],
    }
    return schemas


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}
