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
def test_searches_agree(documents, expression, expected):  # noqa: F811
    assert search(documents, "body", expression) == expected


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
        try:
            answers.append(search(uow, "body", expression))
        except BadRequest as error:
            answers.append(error.code)
    assert answers[0] == answers[1], expression
