"""match, imatch, isdistinct, cs, cd, ov and the (any)/(all) modifiers on both adapters, with the
same answers; what PostgreSQL would refuse, or the memory adapter could not answer alike, is a 400."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import BadRequest
from tests.contract.documents import both_documents, documents, names  # noqa: F401 - the fixtures


def where(uow, column: str, expression: str) -> list[str]:
    return names(uow, f"{column}={quote(expression, safe='().*:!<>-')}")


@pytest.mark.parametrize(
    ("column", "expression", "expected"),
    [
        ("body", "match.^The", ["a"]),
        ("body", "imatch.^the", ["a"]),
        ("body", "match.fox$", ["e"]),
        ("name", "match.[a-c]", ["a", "b", "c"]),
        ("body", "imatch.QUICK.*FOX", ["a", "e"]),
        ("body", "match.(quick ){2}", ["e"]),
        ("body", "match.\\w+-\\w+", ["e"]),
        ("body", "not.match.fox", ["b", "f"]),
        ("body", "isdistinct.", ["a", "b", "c", "d", "e"]),  # null is distinct from ""
        ("data->>s", "isdistinct.x", ["b", "c", "d", "e", "f"]),
        ("data->>s", "not.isdistinct.x", ["a"]),
        ("data", 'cs.{"tags":["red"]}', ["a", "d"]),
        ("data->tags", 'cs.["blue"]', ["a", "b"]),
        ("data->tags", 'cs."red"', ["a", "d"]),  # an array contains a scalar it holds
        ("data", 'cs.{"nested":{}}', ["a", "b", "c", "e"]),
        ("data", 'cs.[{"three":3}]', ["f"]),
        ("data", 'cd.{"s":"Z","tags":["green","red","blue"]}', ["d"]),
        ("data->tags", 'cd.["red","blue","green"]', ["a", "b", "c", "d"]),
        ("data->tags", 'ov.["green","blue"]', ["a", "b", "d"]),
        ("data->tags", 'not.ov.["green","blue"]', ["c"]),  # no tags at all is unknown
        ("data->n", "ov.[1]", []),
        ("data->tags", "cs.{red}", ["a", "d"]),  # PostgREST clients send lists as {a,b}: strings
        ("data->tags", "cd.{red,blue,green}", ["a", "b", "c", "d"]),
        ("data->tags", "ov.{green,blue}", ["a", "b", "d"]),
        ("data->tags", "ov.{}", []),
        ("tags", "cs.{red}", ["a", "d"]),  # SQL arrays: @>, <@ and && of the column's own type
        ("tags", 'cs.{"a,b"}', ["d"]),
        ("tags", 'cs.["blue","red"]', ["a"]),
        ("tags", "cs.{}", ["a", "b", "c", "d"]),  # e's null array is unknown
        ("tags", "cd.{red,blue,green}", ["a", "b", "c"]),
        ("tags", "ov.{green,blue}", ["a", "b", "d"]),
        ("tags", "not.ov.{green,blue}", ["c"]),
        ("tags", "ov.{}", []),
        ("scores", "cs.{3}", ["b"]),
        ("scores", "cd.[1,2,3]", ["a", "b", "c"]),
        ("scores", "ov.{-1,1}", ["a", "d"]),
        ("name", "eq(any).{a,c,z}", ["a", "c"]),
        ("body", "like(any).{*lazy*,*said}", ["a", "b", "c"]),
        ("body", "like(all).{*quick*,*fox*}", ["a", "e"]),
        ("data->>s", "gt(all).{X,w}", ["a", "b"]),
        ("name", "neq(all).{a,b}", ["c", "d", "e", "f"]),
        ("name", "eq(any).{}", []),
        ("name", "eq(all).{}", ["a", "b", "c", "d", "e", "f"]),
        ("name", "not.eq(any).{a,b}", ["c", "d", "e", "f"]),
        ("body", "imatch(any).{^the,naps$}", ["a", "b"]),
        ("name", 'eq(any).{"a","b,c"}', ["a"]),
    ],
)
def test_operators_agree(documents, column, expression, expected):  # noqa: F811
    assert where(documents, column, expression) == expected


def test_operators_inside_logic_trees(documents):  # noqa: F811
    assert names(documents, quote('or=(name.eq(any).{a,b},data->tags.cs.["green"])', safe="=().{},")) == [
        "a", "b", "d"]


@pytest.mark.parametrize(
    ("column", "expression", "code"),
    [
        ("name", "cs.x", "42883"),
        ("data", "cs.{bad", "22P02"),
        ("data->tags", 'ov."red"', "PGRST100"),
        ("name", "in(any).{a}", "PGRST100"),
        ("name", "is(any).{a}", "PGRST100"),
        ("name", "eq(any).(a,b)", "PGRST100"),
        ("name", "eq(some).{a}", "PGRST100"),
        ("body", "match.(?=x)", "PGRST100"),
        ("body", "match.(a+)+", "PGRST100"),
        ("body", "match.[[:alpha:]]", "PGRST100"),
        ("body", "match.a{x", "PGRST100"),
        ("body", "match.\\1", "PGRST100"),
        ("body", "match.(", "2201B"),
        ("body", "match." + "a" * 600, "PGRST100"),
        ("data", "eq.1", "PGRST100"),
        ("scores", "cs.{x}", "22P02"),
        ("scores", "cs.[[1]]", "22P02"),
        ("tags", "cs.red", "22P02"),
        ("tags", "ov.{NULL}", "PGRST100"),
        ("tags", "cs.{" + ",".join("x" * 1001) + "}", "PGRST100"),
        ("data->n", "isdistinct.1", "PGRST100"),
        ("data->n", "match.1", "PGRST100"),
    ],
)
def test_bad_operator_use_is_a_400(documents, column, expression, code):  # noqa: F811
    with pytest.raises(BadRequest) as caught:
        where(documents, column, expression)
    assert caught.value.code == code


JSON_VALUES = st.sampled_from(['["red"]', '["blue","red"]', "[]", '"red"', "1", "{}", '{"k":"v1"}', '{"k":null}',
                               '{"tags":["red"]}', '{"n":1}', "null", '[1,"two"]', '[{"three":3}]', "[[]]"])
REFS = st.sampled_from(["data", "data->tags", "data->nested", "data->n", "data->list", "data->s"])
PATTERNS = st.sampled_from(["^the", "fox$", "qu.ck", "[aeiou]{2}", "(lazy|naps)", "^$", "o.*o", "\\s\\w{3}\\s",
                            "[^a-z ]", "x?y*z+"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.tuples(REFS, st.sampled_from(["cs", "cd", "ov", "not.cs", "not.ov"]), JSON_VALUES),
    st.tuples(st.sampled_from(["tags", "scores"]), st.sampled_from(["cs", "cd", "ov", "not.cs", "not.cd"]),
              st.sampled_from(["{}", "{red}", "{blue,red}", "{1,2}", "{2,3}", "{-1}", '["green"]', "{3,3}"])),
    st.tuples(st.sampled_from(["body", "name", "data->>s"]), st.sampled_from(["match", "imatch", "not.match"]),
              PATTERNS),
    st.tuples(st.sampled_from(["name", "data->>s", "body"]),
              st.sampled_from(["eq(any)", "neq(all)", "lt(any)", "gte(all)", "like(any)", "ilike(all)",
                               "not.eq(any)", "isdistinct"]),
              st.sampled_from(["{a,x}", "{}", "{Z,b,y}", "{*a*,*o*}", "{null}", "x", "{\"\"}"])),
))
def test_memory_answers_operators_exactly_as_postgresql(both_documents, filter_):  # noqa: F811
    memory, postgres = both_documents
    column, op, value = filter_
    answers = []
    for uow in (memory, postgres):
        try:
            answers.append(where(uow, column, f"{op}.{value}"))
        except BadRequest as error:
            answers.append(error.code)
    assert answers[0] == answers[1], f"{column}={op}.{value}"
