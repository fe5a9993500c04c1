"""`depot adopt` for views, without a database: the lineage read from a rewrite rule's text, and what it
declares from it (references, key)."""

from __future__ import annotations

from adapters.postgres.adopt import Declaration, DeclaredColumn
from adapters.postgres.adopt_views import FoundView, FoundViewColumn, _follow, declare_views, target_entries
from domain.schema import Column, ColumnType, References

# nodeToString of `SELECT id AS "x{y", (SELECT 1) AS one, name FROM t1 WHERE id IN (SELECT id FROM t1)`,
# trimmed to the fields that matter: a subquery's target list comes before the view's own, and one
# nests inside a target entry's expression.
RULE = r"""({QUERY :commandType 1 :rtable ({RANGETBLENTRY :relid 16385}) :jointree {FROMEXPR :quals {SUBLINK
:subselect {QUERY :targetList ({TARGETENTRY :expr {VAR :varno 1} :resno 1 :resname id :ressortgroupref 0
:resorigtbl 16385 :resorigcol 1 :resjunk false})}}} :targetList ({TARGETENTRY :expr {VAR :varno 1} :resno 1
:resname x\{y :ressortgroupref 0 :resorigtbl 16385 :resorigcol 1 :resjunk false} {TARGETENTRY :expr {SUBLINK
:subselect {QUERY :targetList ({TARGETENTRY :expr {CONST :constvalue 4 [ 1 0 0 0 ]} :resno 1 :resname ?column?
:ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false})}} :resno 2 :resname one :ressortgroupref 0
:resorigtbl 0 :resorigcol 0 :resjunk false} {TARGETENTRY :expr {VAR :varno 1} :resno 3 :resname name
:ressortgroupref 0 :resorigtbl 16385 :resorigcol 2 :resjunk false} {TARGETENTRY :expr {VAR :varno 1} :resno 4
:resname ordered :ressortgroupref 1 :resorigtbl 16385 :resorigcol 2 :resjunk true}) :override 0})"""


def test_only_the_views_own_target_list_counts():
    assert target_entries(RULE) == [("x{y", 16385, 1), ("one", 0, 0), ("name", 16385, 2)]


def test_lineage_is_followed_through_a_view_down_to_its_table():
    direct = {"levels": {"stock_id": ("stock", "id"), "book": ("stock", "isbn")},
              "big": {"stock_id": ("levels", "stock_id"), "n": ("levels", "quantity")}}
    assert _follow(direct, "big") == {"stock_id": ("stock", "id")}  # quantity is not a plain column there


def table(name: str, key: tuple[str, ...], *columns: Column, surrogate: bool = False) -> Declaration:
    return Declaration(name, natural_key=key, surrogate_id=surrogate, columns=[DeclaredColumn(c) for c in columns])


def view(name: str, lineage: dict, *columns: str, uniques=()) -> FoundView:  # noqa: ANN001
    return FoundView(name, bool(uniques), tuple(FoundViewColumn(c, "text", None) for c in columns), "SELECT 1",
                     None, True, (), lineage, tuple(uniques), (), ())


TABLES = [
    table("customers", ("code",), Column("code", ColumnType.TEXT)),
    table("orders", ("number",), Column("number", ColumnType.TEXT),
          Column("customer", ColumnType.TEXT, reference=References("customers"))),
]


def test_a_projected_key_and_foreign_key_become_references_and_the_key():
    (d,) = declare_views([view("v", {"n": ("orders", "number"), "c": ("orders", "customer")}, "n", "c", "x")],
                         TABLES)
    refs = {c.column.name: c.column.reference for c in d.declared}
    assert refs == {"n": References("orders", None, soft=True), "c": References("customers", None, soft=True),
                    "x": None}
    assert d.key == ("n",)
    assert any("no embed through x" in n for n in d.notes)


def test_a_join_is_keyed_by_the_keys_of_every_table_it_projects_whole():
    (d,) = declare_views([view("v", {"n": ("orders", "number"), "k": ("customers", "code")}, "n", "k")], TABLES)
    assert d.key == ("n", "k")


def test_a_materialized_views_unique_index_is_its_key():
    (d,) = declare_views([view("m", {}, "a", "b", uniques=[("b",)])], TABLES)
    assert (d.materialized, d.key) == (True, ("b",))
    assert d.notes == ["no embeds: none of its columns comes straight from a table's key or foreign key"]


def test_a_view_without_lineage_is_keyed_by_all_its_columns_and_says_so():
    (d,) = declare_views([view("v", {}, "a", "b")], TABLES)
    assert d.key == ("a", "b")
    assert any("no column tells its rows apart" in n for n in d.notes)


def test_a_catalogs_schema_is_a_plain_identifier():
    import pytest

    from domain.schema import Catalog

    assert Catalog(schema="test").extend().schema == "test"
    with pytest.raises(ValueError, match="schema 'My Shop'"):
        Catalog(schema="My Shop")
