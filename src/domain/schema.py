"""The declaration language: how a table is declared once, and the Table spec every layer reads."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import annotated_types

from domain.text_search import CONFIGS as SEARCH_CONFIGS


class ColumnType(enum.StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    BIGINT = "bigint"
    FLOAT = "float"
    NUMERIC = "numeric"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMPTZ = "timestamptz"
    TIMESTAMP = "timestamp"  # without time zone: Annotated[dt.datetime, Naive()]
    UUID = "uuid"
    JSON = "json"
    ARRAY = "array"  # of Column.item: list[str], list[int]


_PYTHON_TYPES: dict[type, ColumnType] = {
    str: ColumnType.TEXT,
    int: ColumnType.INTEGER,
    float: ColumnType.FLOAT,
    decimal.Decimal: ColumnType.NUMERIC,
    bool: ColumnType.BOOLEAN,
    dt.date: ColumnType.DATE,
    dt.datetime: ColumnType.TIMESTAMPTZ,
    uuid.UUID: ColumnType.UUID,
    dict: ColumnType.JSON,
    list: ColumnType.JSON,  # a bare list is any JSON array; list[str] and list[int] are SQL arrays
}

NUMBER_TYPES = frozenset({ColumnType.INTEGER, ColumnType.BIGINT, ColumnType.FLOAT, ColumnType.NUMERIC})

# The element types of list[...] columns: a SQL array of one of these, no NULL element, one dimension.
_ARRAY_ITEMS: dict[type, ColumnType] = {str: ColumnType.TEXT, int: ColumnType.INTEGER}


# --- column metadata, used inside Annotated[...] -------------------------------------------------


@dataclass(frozen=True)
class References:
    """A reference to another table's key. Hard: a foreign key. Soft: no constraint, still embeddable."""

    table: str
    column: str | None = None
    soft: bool = False


@dataclass(frozen=True)
class Pattern:
    regex: str


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]


@dataclass(frozen=True)
class Numeric:
    precision: int
    scale: int


@dataclass(frozen=True)
class BigInt:
    """Marks an int column as 64-bit."""


@dataclass(frozen=True)
class Naive:
    """Marks a datetime column as `timestamp without time zone`: values carry no UTC offset."""


@dataclass(frozen=True)
class Doc:
    text: str


@dataclass(frozen=True)
class Searchable:
    """Marks a text column for full-text search: PostgreSQL keeps a generated `tsvector` column of it
    (`<name>_tsv`, `to_tsvector(config, <name>)`) with a GIN index, which the fts, plfts, phfts and
    wfts filters in that configuration use instead of computing the vector row by row. The derived
    column is storage only: it is never read, written or listed. `config` is one of
    domain.text_search.CONFIGS."""

    config: str = "simple"


def search_column(name: str) -> str:
    """The name of the generated tsvector column of a Searchable column."""
    return f"{name}_tsv"


@dataclass(frozen=True)
class Renamed:
    """The column was called `old` before: makemigration renames it (keeping its values) instead of
    dropping one column and adding another. Harmless once migrated; remove it when you like."""

    old: str


# --- the spec every layer derives from -----------------------------------------------------------


@dataclass(frozen=True)
class SystemColumns:
    """The names of the columns depot adds to a table, by role.

    Every layer reads a system column through these (``spec.system.version``), never by a literal
    name, so a catalog whose data has its own `version` or `source` can move depot's aside:
    ``Catalog(system_columns="_depot_")`` gives `_depot_source`, `_depot_version`, and so on.
    """

    source: str = "source"
    batch_id: str = "batch_id"
    version: str = "version"
    created_at: str = "created_at"
    updated_at: str = "updated_at"
    deleted_at: str = "deleted_at"  # only on a table declared soft_delete=True

    ROLES: typing.ClassVar[tuple[str, ...]] = ("source", "batch_id", "version", "created_at", "updated_at",
                                               "deleted_at")

    @classmethod
    def prefixed(cls, prefix: str) -> SystemColumns:
        return cls(**{role: f"{prefix}{role}" for role in cls.ROLES})

    @classmethod
    def of(cls, setting: SystemColumns | str | None) -> SystemColumns:
        """A catalog's or table's `system_columns=` setting: a prefix, the names themselves, or None."""
        if setting is None:
            return cls()
        if isinstance(setting, str):
            return cls.prefixed(setting)
        return setting

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(getattr(self, role) for role in self.ROLES)

    def role_of(self, name: str) -> str | None:
        """Which system column `name` is (`"version"` for `_depot_version`), if it is one."""
        return next((role for role in self.ROLES if getattr(self, role) == name), None)


DEFAULT_SYSTEM_COLUMNS = SystemColumns()


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: typing.Any = _Missing()

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = False
    default: typing.Any = MISSING
    pattern: str | None = None
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    reference: References | None = None
    item: ColumnType | None = None  # the element type of an ARRAY column
    system: bool = False
    generated: bool = False
    description: str | None = None
    renamed_from: str | None = None
    searchable: str | None = None  # Searchable(): the text search configuration of its tsvector column

    @property
    def required(self) -> bool:
        """A writer must send it: not nullable, no default, not filled by depot."""
        return not self.nullable and self.default is MISSING and not self.system and not self.generated

    @property
    def writable(self) -> bool:
        return not self.system and not self.generated

    @property
    def type_name(self) -> str:
        """The type as PostgreSQL would name it in a message: `text[]` for an array of text."""
        if self.type is ColumnType.ARRAY and self.item is not None:
            return f"{self.item.value}[]"
        return self.type.value

    @property
    def item_column(self) -> Column:
        """An ARRAY column's element as a column of its own: what validates one item and gives its SQL type."""
        assert self.item is not None, f"{self.name} is not an array"
        return Column(self.name, self.item)

    @property
    def int_range(self) -> tuple[int, int] | None:
        if self.type is ColumnType.INTEGER:
            return INT32
        if self.type is ColumnType.BIGINT:
            return INT64
        return None


@dataclass(frozen=True)
class ForeignKey:
    """A (possibly composite) reference from `columns` to `target_columns` of `target`."""

    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    soft: bool = False

    @property
    def name(self) -> str:
        return "_".join(self.columns)

    def constraint_name(self, table: str) -> str:
        return f"fk_{table}_{self.name}"


@dataclass(frozen=True)
class Table:
    name: str
    group: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    natural_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    read_only: bool = False
    description: str | None = None
    unique: tuple[tuple[str, ...], ...] = ()  # further unique column sets (NULLs distinct, as in SQL)
    system: SystemColumns = DEFAULT_SYSTEM_COLUMNS  # the names of the columns depot adds
    kind: str = "table"  # or VIEW / MATERIALIZED: a relation the database defines, read-only to depot
    definition: ViewRows | None = field(default=None, compare=False)  # a view's rows in memory (Catalog.view)
    # Citus: the column that shards the table, or a reference table copied to every node (citus.py).
    distribute_by: str | None = None
    reference: bool = False
    history: bool = False  # depot keeps every version of every row in the derived table history_name
    history_of: str | None = None  # on a derived history table: the table whose versions it keeps
    row_key: tuple[str, ...] = ()  # on a derived history table: that table's primary key
    claims_of: str | None = None  # on a derived claims table: the table whose losing values it keeps
    # False: the natural key may repeat (an instance table of observations, told apart by its surrogate id),
    # which disposition=append is for; it is then indexed, not unique, and nothing upserts on it.
    unique_natural_key: bool = True
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def has_column(self, name: str) -> bool:
        return name in self._by_name

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def writable_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.writable)

    @property
    def is_view(self) -> bool:
        """A view or a materialized view: depot reads it, never writes, creates nor alters it."""
        return self.kind != "table"

    @property
    def materialized(self) -> bool:
        return self.kind == MATERIALIZED

    @property
    def has_provenance(self) -> bool:
        # A view's column named `source` or `version` is the view's data: depot keeps nothing on a view.
        return not self.is_view and self.has_column(self.system.source)

    @property
    def has_versions(self) -> bool:
        """Whether depot keeps `version`, `created_at` and `updated_at` on this table (SYSTEM_GROUPS)."""
        return not self.is_view and self.has_column(self.system.version)

    @property
    def soft_delete(self) -> bool:
        """Whether a delete only marks the row (`deleted_at`), which reads then leave out (soft_delete=True).
        Not on its history table, whose copy of the column is data."""
        name = self.system.deleted_at
        return not self.is_view and self.has_column(name) and self.column(name).system

    def inserted_stamp(self, now: dt.datetime, source: str = "manual", batch_id: int | None = None) -> dict:
        """The system columns' values of a row about to be inserted: depot sets them, never the caller."""
        s, stamp = self.system, {}
        if self.has_provenance:
            stamp |= {s.source: source, s.batch_id: batch_id}
        if self.has_versions:
            stamp |= {s.version: 1, s.created_at: now, s.updated_at: now}
        return stamp

    def changed_stamp(self, stored: dict, now: dt.datetime) -> dict:
        """The version and updated_at of a stored row whose values change."""
        return {self.system.version: stored[self.system.version] + 1, self.system.updated_at: now}

    @property
    def default_disposition(self) -> str:
        """What an ingest batch does when it names no disposition: a log whose natural key may repeat
        appends; every other table upserts on its natural key."""
        return "upsert" if self.unique_natural_key else "append"

    def edited_stamp(self) -> dict:
        """The provenance of values changed through the table API: by hand (the `manual` source), in no
        batch. The batch that wrote the row before no longer owns it: reverting that batch meets the
        edit as a conflict instead of undoing it with the batch's own change."""
        s = self.system
        return {s.source: "manual", s.batch_id: None} if self.has_provenance else {}

    @property
    def kept_on_update(self) -> frozenset[str]:
        """What an upsert never overwrites on an existing row: its identity and its history."""
        s = self.system
        return frozenset(c for c in (self.surrogate, s.version, s.created_at, s.updated_at) if c is not None)

    @property
    def surrogate(self) -> str | None:
        """The generated id column (`surrogate_id`), if the table has one."""
        return next((c.name for c in self.columns if c.generated), None)

    @property
    def key_column(self) -> str | None:
        """The single column that addresses one row in /api/{table}/{key}, if there is one."""
        return self.primary_key[0] if len(self.primary_key) == 1 else None

    @property
    def hard_foreign_keys(self) -> tuple[ForeignKey, ...]:
        return tuple(fk for fk in self.foreign_keys if not fk.soft)

    def unique_constraint_name(self, columns: tuple[str, ...]) -> str:
        """What PostgreSQL calls the constraint behind a key, so both adapters name it alike."""
        if columns == self.primary_key:
            return f"pk_{self.name}"
        return f"uq_{self.name}_{'_'.join(columns)}"

    def key_of(self, row: dict) -> tuple:
        return tuple(row[c] for c in self.primary_key)

    def with_system_columns(self, names: SystemColumns) -> Table:
        """The same declaration with depot's columns called `names`: what the table becomes when its
        catalog's `system_columns` setting changes (a migration then renames the columns)."""
        rename = {getattr(self.system, role): getattr(names, role) for role in SystemColumns.ROLES}

        def renamed(column: str) -> str:
            return rename.get(column, column) if self.column(column).system else column

        return dataclasses.replace(
            self,
            columns=tuple(dataclasses.replace(c, name=renamed(c.name)) for c in self.columns),
            foreign_keys=tuple(dataclasses.replace(fk, columns=tuple(map(renamed, fk.columns)))
                               for fk in self.foreign_keys),
            system=names,
            _by_name={},  # a lookup of its own, filled from the new columns
        )

    @property
    def history_name(self) -> str:
        return f"{self.name}{HISTORY_SUFFIX}"

    @property
    def claims_name(self) -> str:
        return f"{self.name}{CLAIMS_SUFFIX}"

    @property
    def keeps_claims(self) -> bool:
        """Whether the values of a source that lost on priority are kept (history tables with provenance,
        whose rows have a natural key to claim: a row appended is never superseded)."""
        return self.history and self.has_provenance and self.unique_natural_key


# --- history: the derived table that keeps every version of a row ----------------------------------

HISTORY_SUFFIX = "_history"
CLAIMS_SUFFIX = "_claims"
CLAIMED_AT = "claimed_at"
HISTORY_ID = "history_id"
HISTORY_OPERATION = "operation"
HISTORY_VALID_TO = "valid_to"
# What changed a row. insert/update/delete come from every write path; retire and revert from the
# ingest dispositions that add them; all share the one writer of each adapter (history.py).
OPERATIONS = ("insert", "update", "delete", "retire", "revert")
GONE = ("delete", "retire")  # the operations after which the row is not in its table


def version_at(spec: Table, entry: dict, moment: typing.Any) -> bool:
    """Whether a history entry of `spec` is its row's version at `moment` (the memory adapter's as_of;
    adapters.postgres.history.current_at is the same condition in SQL)."""
    valid_to = entry[HISTORY_VALID_TO]
    return (entry[spec.system.updated_at] <= moment and (valid_to is None or valid_to > moment)
            and entry[HISTORY_OPERATION] not in GONE)


def history_table(spec: Table) -> Table:
    """The history table of `spec`, derived from it and never declared.

    One row per change of a row of `spec`: its columns hold the row's values *after* the change
    (for a delete or retire, the values it had, with `updated_at` set to the time it went), so the
    row's state from `updated_at` (valid_from) until `valid_to` (null while current) is one history
    row: the range tstzrange(updated_at, valid_to). The copies carry no checks and no references:
    history outlives the rows and the rules it was written under. Each column keeps its name, so the
    read language, the COPY fast path and `as_of` work on it as on the table itself.
    """
    columns = [
        Column(HISTORY_ID, ColumnType.BIGINT, generated=True, description="The order of the changes."),
        Column(HISTORY_OPERATION, ColumnType.TEXT, default="insert", choices=OPERATIONS,
               description="What the change was: " + ", ".join(OPERATIONS) + "."),
        *(dataclasses.replace(
            c, generated=False, system=False, pattern=None, choices=None, ge=None, le=None, gt=None, lt=None,
            reference=None, default=MISSING, searchable=None,  # renamed_from kept: the history renames with its table
            nullable=c.nullable or (c.system and c.name == spec.system.batch_id),
        ) for c in spec.columns),
        Column(HISTORY_VALID_TO, ColumnType.TIMESTAMPTZ, nullable=True,
               description="When the next change replaced these values; null while they are current."),
    ]
    return Table(
        name=spec.history_name,
        group=INTERNAL_GROUP,
        columns=tuple(columns),
        primary_key=(HISTORY_ID,),
        natural_key=(HISTORY_ID,),
        read_only=True,
        description=f"Every version of every row of {spec.name}: written by depot, never by hand.",
        system=spec.system,
        history_of=spec.name,
        row_key=spec.primary_key,
    )


def claims_table(spec: Table) -> Table:
    """The claims table of `spec`, derived: one row per (natural key, source) holding the values
    that source last sent for a row it lost on priority (`superseded`), so that they are not thrown
    away. A source's claim goes when its values become the stored row."""
    key = spec.natural_key
    kept = [c for c in spec.columns if c.name in key or c.writable]
    columns = [
        *(dataclasses.replace(c, system=False, reference=None, description=None, pattern=None,
                              choices=None, ge=None, le=None, gt=None, lt=None, default=MISSING, searchable=None)
          for c in kept),
        Column(spec.system.source, ColumnType.TEXT, description="The source whose claim this is."),
        Column(spec.system.batch_id, ColumnType.BIGINT, nullable=True, description="The batch that sent it."),
        Column(CLAIMED_AT, ColumnType.TIMESTAMPTZ, description="When the source sent these values."),
    ]
    return Table(
        name=spec.claims_name,
        group=INTERNAL_GROUP,
        columns=tuple(columns),
        primary_key=(*key, spec.system.source),
        natural_key=(*key, spec.system.source),
        read_only=True,
        description=f"What each source that lost on priority claims about rows of {spec.name}.",
        system=spec.system,
        claims_of=spec.name,
    )


# --- the catalog and its decorator ---------------------------------------------------------------

VIEW = "view"
MATERIALIZED = "materialized view"
VIEW_GROUP = "views"  # the group (OpenAPI tag) of every view

# What a view's rows are in the memory adapter: a function of a reader of the other relations'
# rows (`read("orders")` is a list of dicts), as the view's SQL is of its tables in PostgreSQL.
ViewRows = Callable[[Callable[[str], list[dict]]], typing.Iterable[dict]]

SYSTEM_GROUPS = ("primary", "secondary", "instances")  # the groups whose tables get the system columns
INTERNAL_GROUP = "ingestion"  # depot's own bookkeeping tables, which declare their columns themselves
GROUPS = (*SYSTEM_GROUPS, INTERNAL_GROUP)


SYSTEM_SCHEMA = "depot"  # where depot's own tables live unless a catalog says otherwise (Catalog.system_schema)


class Catalog:
    """An ordered set of table declarations. Tables must be declared after the tables they reference.

    A new catalog starts with depot's system tables (`sources`, `ingest_batches`, `rejected_rows`,
    declared in domain.system), which every table's provenance columns reference. `system=False`
    is for the system catalog itself.

    `system_columns` names the columns depot adds to every table (a prefix such as ``"_depot_"``, or a
    SystemColumns); a table's own `system_columns=` overrides it.

    `schema` is the PostgreSQL schema the catalog's tables and views live in (`public` by default).
    depot puts it first on the search_path of every connection it opens, so its migrations make the
    tables there and its reads and writes find them there; another catalog in another schema of the
    same database is another depot process, with its own tables and history.

    `system_schema` is where depot's own tables (and the version table of depot's own migration
    history) live, `depot` by default: never among the user's tables. Catalogs of one database that
    share it share their sources; each batch records the schema of the catalog that ran it.
    """

    def __init__(self, tables: typing.Iterable[Table] = (), *, system: bool = True,
                 system_columns: SystemColumns | str | None = None, schema: str = "public",
                 system_schema: str = SYSTEM_SCHEMA) -> None:
        for setting, value in (("schema", schema), ("system_schema", system_schema)):
            if not isinstance(value, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value) \
                    or value.startswith("pg_"):
                raise ValueError(f"{setting} {value!r}: lower-case letters, digits and underscores, as PostgreSQL "
                                 "keeps a name unquoted (and not pg_..., which PostgreSQL keeps for itself)")
        if system_schema == schema:
            raise ValueError(f"system_schema {system_schema!r} is the catalog's own schema: depot's tables live "
                             "in a schema of their own, never among the catalog's tables")
        self._tables: dict[str, Table] = {}
        self.system_columns = SystemColumns.of(system_columns)
        self.schema = schema
        self.system_schema = system_schema
        tables = list(tables)
        if system and not any(t.name == "sources" for t in tables):
            from domain.system import SYSTEM  # here, not at the top: domain.system declares with Catalog

            tables = [*SYSTEM, *tables]
        for t in tables:
            self.add(t)

    def add(self, spec: Table) -> Table:
        if spec.history_of is not None or spec.claims_of is not None:  # derived with their table, below
            return spec
        if spec.name in self._tables:
            raise ValueError(f"table {spec.name!r} is declared twice")
        for fk in spec.foreign_keys:
            if fk.target != spec.name and fk.target not in self._tables:
                raise ValueError(f"{spec.name}.{fk.name} references undeclared table {fk.target!r}")
        self._tables[spec.name] = spec
        derived = [history_table(spec)] if spec.history else []
        derived += [claims_table(spec)] if spec.keeps_claims else []
        for table in derived:
            if table.name in self._tables:
                raise ValueError(f"table {table.name!r} is declared, and is also one {spec.name} derives")
            self._tables[table.name] = table
        return spec

    def with_system_columns(self, setting: SystemColumns | str | None) -> Catalog:
        """This catalog with every one of its own tables' system columns named by `setting`."""
        names = SystemColumns.of(setting)
        own = {t.name for t in self.user_tables}
        return Catalog([t.with_system_columns(names) if t.name in own else t for t in self],
                       system=False, system_columns=names, schema=self.schema, system_schema=self.system_schema)

    def history_of(self, name: str) -> Table | None:
        """The history table of `name`, if it keeps one."""
        spec = self._tables[name]
        return self._tables[spec.history_name] if spec.history else None

    def extend(self) -> Catalog:
        """A copy to declare more tables in (tests use it for throwaway tables)."""
        return Catalog(self._tables.values(), system=False, system_columns=self.system_columns, schema=self.schema,
                       system_schema=self.system_schema)

    @property
    def user_tables(self) -> tuple[Table, ...]:
        """The tables the catalog declares itself: all but depot's system tables and the derived ones."""
        from domain.system import SYSTEM_TABLES

        return tuple(t for t in self if t.name not in SYSTEM_TABLES and t.history_of is None and t.claims_of is None)

    def schema_of(self, name: str) -> str:
        """The PostgreSQL schema a relation of this catalog lives in: depot's own tables in system_schema."""
        from domain.system import SYSTEM_TABLES

        return self.system_schema if name in SYSTEM_TABLES else self.schema

    def __getitem__(self, name: str) -> Table:
        return self._tables[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tables

    def __iter__(self) -> Iterator[Table]:
        return iter(self._tables.values())

    def __len__(self) -> int:
        return len(self._tables)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tables)

    def referencing(self, name: str) -> list[tuple[Table, ForeignKey]]:
        """Every (table, foreign key) that points at `name`, soft ones included."""
        return [(t, fk) for t in self for fk in t.foreign_keys if fk.target == name]

    def table(
        self,
        name: str,
        *,
        group: str,
        natural_key: tuple[str, ...] | None = None,
        references: tuple[ForeignKey, ...] = (),
        surrogate_id: bool = False,
        provenance: bool = True,
        read_only: bool = False,
        unique: tuple[tuple[str, ...], ...] = (),
        system_columns: SystemColumns | str | None = None,
        distribute_by: str | None = None,
        reference: bool = False,
        history: bool | None = None,
        soft_delete: bool = False,
        unique_natural_key: bool = True,
    ) -> Callable[[type], type]:
        """Declare a table from a dataclass. Field order is column order.

        `surrogate_id` adds a generated bigint `id` primary key; the natural key then stays unique.
        `provenance` adds `source` and `batch_id`; every table of SYSTEM_GROUPS also gets
        `version`, `created_at` and `updated_at`. `system_columns` renames those for this table
        (a prefix or a SystemColumns), over the catalog's setting.

        On Citus, `distribute_by` shards the table by a column and `reference=True` copies it to
        every node; what Citus cannot hold is refused here (check_distribution). `history` (default:
        the tables of SYSTEM_GROUPS) derives the table `{name}_history`, which keeps every version of
        every row. `soft_delete` adds `deleted_at`: deletes, retirements and delete batches then mark
        rows instead of removing them, and reads leave marked rows out unless include_deleted=true.
        `unique_natural_key=False` (with `surrogate_id=True`) lets the natural key repeat: rows are
        observations told apart by their id, loaded with disposition=append; the key is indexed only.
        """
        names = self.system_columns if system_columns is None else SystemColumns.of(system_columns)

        if group not in GROUPS:
            raise ValueError(f"table {name!r}: unknown group {group!r}; the groups are {', '.join(GROUPS)}")
        if not unique_natural_key and not surrogate_id:
            raise ValueError(f"table {name!r}: a natural key that may repeat (unique_natural_key=False) needs "
                             "surrogate_id=True, so that each row has an id of its own to be addressed by")

        def wrap(cls: type) -> type:
            doc = cls.__dict__.get("__doc__")  # before @dataclass invents one from the signature
            if not dataclasses.is_dataclass(cls):
                cls = dataclass(frozen=True, kw_only=True)(cls)
            hints = typing.get_type_hints(cls, include_extras=True)
            columns = [_column_from_field(f, hints) for f in dataclasses.fields(cls)]
            _refuse_reserved(name, columns, group, surrogate_id, names)
            nk = tuple(natural_key or (columns[0].name,))
            if surrogate_id:
                columns.insert(0, Column("id", ColumnType.BIGINT, generated=True))
            if group in SYSTEM_GROUPS:
                columns.extend(_system_columns(provenance, names, soft_delete=soft_delete))
            elif soft_delete:
                raise ValueError(f"table {name!r}: soft_delete=True is for the tables of the groups "
                                 f"{', '.join(SYSTEM_GROUPS)}, which have depot's system columns")
            fks = [
                ForeignKey((c.name,), c.reference.table, (c.reference.column or "",), c.reference.soft)
                for c in columns if c.reference is not None
            ]
            fks = [self._resolve(fk, name, nk) for fk in (*fks, *references)]
            spec = Table(
                name=name,
                group=group,
                columns=tuple(columns),
                primary_key=("id",) if surrogate_id else nk,
                natural_key=nk,
                foreign_keys=tuple(fks),
                read_only=read_only,
                description=(doc or "").strip() or None,
                unique=tuple(tuple(u) for u in unique),
                system=names,
                history=group in SYSTEM_GROUPS if history is None else history,
                distribute_by=distribute_by,
                reference=reference,
                unique_natural_key=unique_natural_key,
            )
            _check(spec)
            check_distribution(spec, lambda target: spec if target == name else self._tables.get(target))
            self.add(spec)
            cls.__depot_table__ = spec  # type: ignore[attr-defined]
            return cls

        return wrap

    def view(
        self,
        name: str,
        *,
        key: tuple[str, ...],
        materialized: bool = False,
        references: tuple[ForeignKey, ...] = (),
        rows: ViewRows | None = None,
    ) -> Callable[[type], type]:
        """Declare a view (or materialized view) that the database already has, from a dataclass of its columns.

        depot serves it read-only at /api/{name} with the whole read language, and never creates,
        alters nor drops it: the view's SQL is the database's (its start-up check only sees that it
        exists with these columns). `key` is a set of columns that tells its rows apart (the order
        that pages rely on ends with it). A column's `References("orders")` (always soft: a view has
        no constraints) says that it comes straight from that table's key or foreign key, which makes
        the embeds both ways; `depot adopt` finds these from the view's definition. `rows` is what
        the view holds in the memory adapter (see ViewRows); without it the view is empty there.
        """
        def wrap(cls: type) -> type:
            doc = cls.__dict__.get("__doc__")
            if not dataclasses.is_dataclass(cls):
                cls = dataclass(frozen=True, kw_only=True)(cls)
            hints = typing.get_type_hints(cls, include_extras=True)
            columns = [_column_from_field(f, hints) for f in dataclasses.fields(cls)]
            # Every reference of a view is soft: PostgreSQL has no foreign key on a view, only lineage.
            columns = [dataclasses.replace(c, reference=dataclasses.replace(c.reference, soft=True))
                       if c.reference is not None else c for c in columns]
            fks = [ForeignKey((c.name,), c.reference.table, (c.reference.column or "",), True)
                   for c in columns if c.reference is not None]
            fks += [dataclasses.replace(fk, soft=True) for fk in references]
            spec = Table(
                name=name, group=VIEW_GROUP, columns=tuple(columns), primary_key=tuple(key),
                natural_key=tuple(key), foreign_keys=tuple(self._resolve(fk, name, tuple(key)) for fk in fks),
                read_only=True, description=(doc or "").strip() or None,
                system=self.system_columns, kind=MATERIALIZED if materialized else VIEW, definition=rows,
            )
            _check(spec)
            self.add(spec)
            cls.__depot_table__ = spec  # type: ignore[attr-defined]
            return cls

        return wrap

    @property
    def views(self) -> tuple[Table, ...]:
        return tuple(t for t in self if t.is_view)

    def _resolve(self, fk: ForeignKey, own_name: str, own_key: tuple[str, ...]) -> ForeignKey:
        """Fill in the referenced columns: the target's natural key when not named."""
        if fk.target_columns and fk.target_columns[0]:
            return fk
        if fk.target != own_name and fk.target not in self._tables:
            raise ValueError(f"{own_name}.{fk.name} references undeclared table {fk.target!r}")
        if fk.target == own_name:
            target_key = own_key
        else:  # a natural key that may repeat is no key to point at: its rows are pointed at by id
            target = self._tables[fk.target]
            target_key = target.natural_key if target.unique_natural_key else target.primary_key
        return dataclasses.replace(fk, target_columns=target_key)


def _system_columns(provenance: bool, names: SystemColumns = DEFAULT_SYSTEM_COLUMNS, *,
                    soft_delete: bool = False) -> list[Column]:
    cols = []
    if provenance:
        cols += [
            Column(names.source, ColumnType.TEXT, default="manual", system=True,
                   reference=References("sources", "code"),
                   description="The source that wrote this row's current values."),
            Column(names.batch_id, ColumnType.BIGINT, nullable=True, system=True,
                   reference=References("ingest_batches", "id"),
                   description="The ingest batch that last wrote this row, if any."),
        ]
    cols += [
        Column(names.version, ColumnType.INTEGER, default=1, system=True,
               description="1 on insert, +1 on each change; the ETag."),
        Column(names.created_at, ColumnType.TIMESTAMPTZ, system=True),
        Column(names.updated_at, ColumnType.TIMESTAMPTZ, system=True),
    ]
    if soft_delete:
        cols.append(Column(names.deleted_at, ColumnType.TIMESTAMPTZ, nullable=True, system=True,
                           description="When the row was deleted: null while it is live. Reads leave deleted "
                                       "rows out unless include_deleted=true."))
    return cols


def reserved_names(group: str, surrogate_id: bool,
                   names: SystemColumns = DEFAULT_SYSTEM_COLUMNS) -> tuple[str, ...]:
    """The column names depot adds to a table of this group, which its declaration may not use.

    All system column names are reserved in SYSTEM_GROUPS, provenance or not, so a table can gain
    provenance later without renaming a column."""
    added = list(names.names) if group in SYSTEM_GROUPS else []
    return ("id", *added) if surrogate_id else tuple(added)


def _refuse_reserved(table: str, columns: list[Column], group: str, surrogate_id: bool,
                     names: SystemColumns) -> None:
    reserved = reserved_names(group, surrogate_id, names)
    clashes = [c.name for c in columns if c.name in reserved]
    if clashes:
        raise ValueError(
            f"table {table!r}: {', '.join(map(repr, clashes))} "
            f"{'is a name' if len(clashes) == 1 else 'are names'} depot reserves for its system columns "
            f"(reserved here: {', '.join(reserved)}); rename the column, or move depot's aside "
            f"with system_columns=\"_depot_\" on the table or the catalog"
        )


def _column_from_field(f: dataclasses.Field, hints: dict) -> Column:
    hint = hints[f.name]
    metadata: list = []
    if typing.get_origin(hint) is typing.Annotated:
        hint, *metadata = typing.get_args(hint)
    nullable = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        (hint,) = args
    base = typing.get_origin(hint) or hint
    if base not in _PYTHON_TYPES:
        raise TypeError(f"column {f.name}: unsupported type {hint!r}")
    kwargs: dict[str, typing.Any] = {"type": _PYTHON_TYPES[base], "nullable": nullable}
    if base is list and typing.get_args(hint):
        (item,) = typing.get_args(hint)
        if item not in _ARRAY_ITEMS:
            raise TypeError(f"column {f.name}: arrays hold str or int, not {item!r} (a bare list is JSON)")
        kwargs.update(type=ColumnType.ARRAY, item=_ARRAY_ITEMS[item])
    if f.default is not dataclasses.MISSING:
        kwargs["default"] = f.default
    elif f.default_factory is not dataclasses.MISSING:
        raise TypeError(f"column {f.name}: a default_factory is not a column default; use a plain default")
    for m in metadata:
        match m:
            case References():
                kwargs["reference"] = m
            case Pattern(regex=r):
                kwargs["pattern"] = r
            case OneOf(values=v):
                kwargs["choices"] = tuple(v)
            case Numeric(precision=p, scale=s):
                kwargs.update(type=ColumnType.NUMERIC, precision=p, scale=s)
            case BigInt():
                kwargs["type"] = ColumnType.BIGINT
            case Naive():
                if base is not dt.datetime:
                    raise TypeError(f"column {f.name}: Naive() marks a datetime column, not {hint!r}")
                kwargs["type"] = ColumnType.TIMESTAMP
            case Doc(text=t):
                kwargs["description"] = t
            case Renamed(old=o):
                kwargs["renamed_from"] = o
            case Searchable(config=c):
                if base is not str or kwargs["type"] is not ColumnType.TEXT:
                    raise TypeError(f"column {f.name}: Searchable() marks a str column, not {hint!r}")
                if c not in SEARCH_CONFIGS:  # what the memory adapter models too
                    raise TypeError(f"column {f.name}: Searchable({c!r}): the configurations are "
                                    f"{', '.join(SEARCH_CONFIGS)}")
                kwargs["searchable"] = c
            case annotated_types.Ge(ge=v):
                kwargs["ge"] = v
            case annotated_types.Le(le=v):
                kwargs["le"] = v
            case annotated_types.Gt(gt=v):
                kwargs["gt"] = v
            case annotated_types.Lt(lt=v):
                kwargs["lt"] = v
            case annotated_types.Interval():
                kwargs.update({k: getattr(m, k) for k in ("ge", "le", "gt", "lt") if getattr(m, k) is not None})
            case annotated_types.MaxLen(max_length=n):
                if base is not str:
                    raise TypeError(f"column {f.name}: MaxLen bounds a str column (varchar(n)), not {hint!r}")
                kwargs["max_length"] = n
            case _:
                raise TypeError(f"column {f.name}: unsupported metadata {m!r}")
    bounds = {k: kwargs[k] for k in ("ge", "le", "gt", "lt") if k in kwargs}
    if bounds and (kwargs["type"] not in NUMBER_TYPES or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in bounds.values()
    )):
        # A bound becomes a CHECK by its repr: only plain numbers on number columns read the same in SQL.
        raise TypeError(f"column {f.name}: Ge/Le/Gt/Lt take an int or float bound on a number column")
    if kwargs["type"] is ColumnType.ARRAY:
        refused = [k for k in ("reference", "pattern", "choices", "ge", "le", "gt", "lt") if k in kwargs]
        if refused:
            raise TypeError(f"column {f.name}: an array column takes no {', '.join(refused)} "
                            "(checks and references apply to one value, not to a list of them)")
    return Column(f.name, **kwargs)


def _check(spec: Table) -> None:
    names = set(spec.column_names)
    for column in spec.columns:
        if column.searchable is not None and search_column(column.name) in names:
            raise ValueError(f"{spec.name}: {search_column(column.name)} is the name of {column.name}'s "
                             "generated search column (Searchable()); rename one of them")
    for key in (spec.primary_key, spec.natural_key, *spec.unique):
        missing = set(key) - names
        if missing:
            raise ValueError(f"{spec.name}: key names unknown columns {sorted(missing)}")
    for fk in spec.foreign_keys:
        if set(fk.columns) - names:
            raise ValueError(f"{spec.name}: reference {fk.name} names unknown columns")
    for key in (spec.primary_key, spec.natural_key, *spec.unique, *(fk.columns for fk in spec.foreign_keys)):
        unkeyable = [c for c in key if spec.column(c).type in (ColumnType.ARRAY, ColumnType.JSON)]
        if unkeyable:
            raise ValueError(f"{spec.name}: {', '.join(unkeyable)} cannot be in a key or a reference "
                             "(arrays and JSON are not compared as keys)")


# --- Citus --------------------------------------------------------------------------------------

# depot's own tables that the tables of a catalog reference: on Citus they become reference tables.
CITUS_REFERENCE_SYSTEM_TABLES = ("sources", "ingest_batches")


def check_distribution(spec: Table, table_of: Callable[[str], Table | None]) -> None:
    """Refuse, at declaration, a distribution that Citus cannot hold.

    - A distributed table's natural key and unique column sets must include the distribution
      column (Citus enforces uniqueness within one shard only). A surrogate id primary key is
      widened to (id, column) on Citus by the migration instead (adapters/postgres/citus.py).
    - A hard reference from a distributed table must point at a reference table, or at a table
      distributed by the column the reference pairs with its own distribution column (co-located).
    - A hard reference from a reference table must point at a reference table.
    depot's own sources and ingest_batches count as reference tables: they are made so.
    """
    if spec.distribute_by is None and not spec.reference:
        return
    if spec.distribute_by is not None and spec.reference:
        raise ValueError(f"{spec.name}: a table is either distributed (distribute_by) or a reference table, not both")
    column = spec.distribute_by
    if column is not None:
        if not spec.has_column(column):
            raise ValueError(f"{spec.name}: distribute_by names the unknown column {column!r}")
        if spec.column(column).nullable:
            raise ValueError(f"{spec.name}: the distribution column {column!r} must not be nullable")
        for key in (spec.natural_key, *spec.unique):
            if column not in key:
                raise ValueError(f"{spec.name}: the unique key ({', '.join(key)}) must include the distribution "
                                 f"column {column!r}: Citus enforces uniqueness within one shard only")
    for fk in spec.hard_foreign_keys:
        if fk.target in CITUS_REFERENCE_SYSTEM_TABLES:
            continue
        target = table_of(fk.target)
        if target is not None and target.reference:
            continue
        if spec.reference:
            raise ValueError(f"{spec.name}: a reference table's reference {fk.name} must point at a reference "
                             f"table, and {fk.target} is not one (declare it reference=True)")
        paired = dict(zip(fk.columns, fk.target_columns, strict=False)).get(column or "")
        if target is None or target.distribute_by is None or paired != target.distribute_by:
            raise ValueError(
                f"{spec.name}: the reference {fk.name} must point at a reference table, or at a table distributed "
                f"by the column it pairs with {column!r} (co-located); {fk.target} is "
                + ("not distributed" if target is None or target.distribute_by is None
                   else f"distributed by {target.distribute_by!r}"))
