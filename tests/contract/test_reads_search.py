"""Full-text search (fts, plfts, phfts, wfts, with a configuration) on both adapters: PostgreSQL's
to_tsvector/to_tsquery, and the memory adapter's documented model of them (domain.text_search),
with the same answers on these texts; malformed searches are 400s before any adapter runs them."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import BadRequest
from tests.contract.documents import both_documents, documents, names, page  # noqa: F401 - the fixtures


def search(uow, column: str, expression: str) -> list[str]:
    return names(uow, f"{column}={quote(expression, safe='().*:!<>-')}")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("fts.fox", ["a", "c", "e"]),
        ("fts.fox:*", ["a", "c", "e"]),
        ("fts.Foxes", ["c"]),  # simple: no stemming
        ("fts.quick & fox", ["a", "e"]),
        ("fts.naps | dogs", ["b", "c"]),
        ("fts.!fox", ["b", "f"]),  # d's null body is unknown, neither in nor out
        ("not.fts.fox", ["b", "f"]),
        ("fts.brown <-> fox", ["a"]),
        ("fts.brown <2> fox", ["e"]),
        ("fts.brown-eyed <-> fox", ["e"]),  # a hyphenated word: itself, then its parts
        ("fts.(lazy | naps) & !dog", ["b"]),
        ("fts.", []),
        ("plfts.The Lazy", ["a"]),
        ("plfts.brown-eyed", ["e"]),
        ("phfts.lazy dog", ["a"]),
        ("phfts.quick brown", ["a"]),
        ('wfts."lazy dog" or naps', ["a", "b"]),
        ("wfts.fox -dogs", ["a", "e"]),
        ("fts(simple).the", ["a", "c"]),
        ("fts(english).friend", ["c"]),
        ("fts(english).the & dogs", ["a", "c"]),  # the is a stop word; dogs and dog stem alike
        ("plfts(english).lazy naps", ["b"]),
        ("phfts(english).the lazy dog", ["a"]),
    ],
)
@pytest.mark.parametrize("column", ["body", "abstract"])  # abstract is Searchable(): its generated tsvector
def test_searches_agree(documents, expression, expected, column):  # noqa: F811
    assert search(documents, column, expression) == expected


def test_search_a_json_members_text_and_inside_logic_trees(documents):  # noqa: F811
    assert search(documents, "data->>s", "fts.x") == ["a"]
    assert names(documents, "or=(body.fts.naps,body.wfts.said)") == ["b", "c"]


@pytest.mark.parametrize(
    ("expression", "column", "code"),
    [
        ("fts.fox dog", "body", "42601"),  # a space is not an operator in to_tsquery
        ("fts.(fox", "body", "42601"),
        ("fts.fox &", "body", "42601"),
        ("fts.fox:x", "body", "42601"),
        ("fts(klingon).fox", "body", "42704"),
        ("fts(english.fox", "body", "PGRST100"),
        ("eq(english).fox", "body", "PGRST100"),
        ("fts.!a <-> b", "body", "PGRST100"),
        ("fts.fox", "data", "PGRST100"),
        ("fts.fox", "data->s", "PGRST100"),
        ("fts." + "(" * 40 + "a" + ")" * 40, "body", "PGRST100"),
        ("fts." + "a|" * 600 + "a", "body", "PGRST100"),
    ],
)
def test_bad_searches_are_400s(documents, expression, column, code):  # noqa: F811
    with pytest.raises(BadRequest) as caught:
        search(documents, column, expression)
    assert caught.value.code == code


WORDS = ["quick", "brown", "fox", "lazy", "dog", "dogs", "the", "naps", "friends", "brown-eyed", "said", "a",
         "jumps", "afternoon", "quic"]
OPERATORS = [" & ", " | ", " <-> ", " <2> ", " & !"]


@st.composite
def to_tsquery_text(draw) -> str:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
    text = words[0] + draw(st.sampled_from(["", ":*"]))
    for word in words[1:]:
        text += draw(st.sampled_from(OPERATORS)) + word + draw(st.sampled_from(["", ":*"]))
    return text


SEARCHES = st.one_of(
    st.tuples(st.just("fts"), to_tsquery_text()),
    st.tuples(st.sampled_from(["plfts", "phfts", "wfts"]),
              st.lists(st.sampled_from([*WORDS, "or", "-fox", '"lazy dog"', '"quick brown"']),
                       min_size=1, max_size=4).map(" ".join)),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SEARCHES, st.sampled_from(["", "(simple)", "(english)"]), st.booleans())
def test_memory_answers_searches_exactly_as_postgresql(both_documents, search_, config, negated):  # noqa: F811
    # "foxes" is left out on purpose: English stems it to fox, the memory model's first Porter step does not
    memory, postgres = both_documents
    kind, text = search_
    expression = f"{'not.' if negated else ''}{kind}{config}.{text}"
    answers = []
    for uow in (memory, postgres):
        for column in ("body", "abstract"):  # on the fly, and through the Searchable column's tsvector
            try:
                answers.append(search(uow, column, expression))
            except BadRequest as error:
                answers.append(error.code)
    assert answers[0] == answers[1] == answers[2] == answers[3], expression


def test_a_searchable_column_is_searched_through_its_indexed_tsvector(documents):  # noqa: F811
    """Searchable() derives a generated tsvector column with a GIN index into the SQL tables (hence
    into migrations); searches in its configuration read it, others compute the vector; rows never
    show it."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from adapters.postgres.compile import where_clause
    from adapters.postgres.tables import build_metadata
    from entrypoints.query_string import parse_condition
    from tests.contract.documents import DOCUMENTS

    table = build_metadata(DOCUMENTS).tables["documents"]
    assert isinstance(table.c.abstract_tsv.type, postgresql.TSVECTOR) and table.c.abstract_tsv.computed is not None
    assert any(i.dialect_options["postgresql"]["using"] == "gin" and list(i.columns) == [table.c.abstract_tsv]
               for i in table.indexes)
    spec = DOCUMENTS["documents"]

    def sql(expression: str) -> str:
        compiled = where_clause(table, parse_condition(spec, "abstract", expression))
        return str(compiled.compile(dialect=postgresql.dialect()))

    assert "documents.abstract_tsv @@" in sql("fts.fox") and "to_tsvector" not in sql("wfts(simple).fox")
    assert "to_tsvector" in sql("fts(english).fox")
    assert "abstract_tsv" not in page(documents, "").rows[0]
    assert sa.inspect(table).c.keys()[-1] == "abstract_tsv"  # storage only: after every declared column
