"""ColumnRows: a CSV chunk's validated rows, held as columns, read as the dicts they stand for."""

from __future__ import annotations

from domain.ingestion import ColumnRows, column_of, keys_of, one_per_key, reference_keys, take
from domain.schema import ForeignKey

ROWS = [{"carrier": "UA", "flight": 1, "dest": "LAX"}, {"carrier": "AA", "flight": 2, "dest": None},
        {"carrier": "UA", "flight": 1, "dest": "SFO"}]


def columns() -> ColumnRows:
    return ColumnRows({name: [row[name] for row in ROWS] for name in ROWS[0]}, len(ROWS))


def test_column_rows_read_as_the_rows_they_hold():
    rows = columns()
    assert len(rows) == 3
    assert list(rows) == ROWS
    assert [rows[i] for i in range(3)] == ROWS
    assert rows[-1] == ROWS[-1] and rows[1:] == ROWS[1:]
    assert list(take(rows, [2, 0])) == [ROWS[2], ROWS[0]]
    assert list(ColumnRows({}, 2)) == [{}, {}]


def test_columns_and_keys_are_the_same_from_dicts_and_from_columns():
    for rows in (ROWS, columns()):
        assert column_of(rows, "dest") == ["LAX", None, "SFO"]
        assert column_of(rows, "gate") == [None, None, None]
        assert keys_of(rows, ("carrier", "flight")) == [("UA", 1), ("AA", 2), ("UA", 1)]
        assert keys_of(rows, ("dest",)) == ["LAX", None, "SFO"]
        assert reference_keys(ForeignKey(("dest",), "airports", ("faa",)), rows) == {("LAX",), ("SFO",)}
        unique = one_per_key(rows, ("carrier", "flight"), keep_last=True)
        assert (list(unique.rows), unique.numbers, unique.dropped) == ([ROWS[2], ROWS[1]], [2, 1], [0])
