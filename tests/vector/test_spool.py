"""The vector rows' spool: batches written and read back as the same Arrow columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from s2m_geo.vector.spool import read_batches, write_batch

SCHEMA = pa.schema([("n", pa.int32()), ("x", pa.float64()), ("t", pa.string()), ("g", pa.binary())])
TEXT = ["a", "", "é ü — 中文", "<b>&'\"</b>\n\x00tab\t"]


def _batch(k: int) -> list:
    return [
        ("number", np.arange(k, dtype=np.int32)),
        ("number", np.array([0.5, np.nan, -1e300, 3.0][:k])),
        ("text", TEXT[:k]),
        ("binary", [bytes([i]) * i for i in range(k)]),
    ]


def test_batches_come_back_as_written(tmp_path):
    spool = tmp_path / "rows"
    with open(spool, "wb") as f:
        for k in (4, 0, 3):
            write_batch(f, _batch(k))
    got = list(read_batches(spool, SCHEMA))
    assert [b.num_rows for b in got] == [4, 0, 3]
    first = got[0].to_pydict()
    assert first["n"] == [0, 1, 2, 3] and first["t"] == TEXT
    assert first["x"] == [0.5, None, -1e300, 3.0]  # NaN is a null, as GeoPandas writes it
    assert first["g"] == [b"", b"\x01", b"\x02\x02", b"\x03\x03\x03"]
    assert all(b.schema == SCHEMA for b in got)


def test_a_spool_cut_inside_a_batch_is_an_error_not_fewer_rows(tmp_path):
    spool = tmp_path / "rows"
    with open(spool, "wb") as f:
        write_batch(f, _batch(4))
        write_batch(f, _batch(2)[:2])  # the text and binary columns never written
    with pytest.raises(ValueError, match="ends inside a batch"):
        list(read_batches(spool, SCHEMA))


def test_nothing_but_numpy_arrays_is_read(tmp_path):
    """A spool whose records hold Python objects (pickles) is refused, not unpickled."""
    spool = tmp_path / "rows"
    with open(spool, "wb") as f:
        np.save(f, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        list(read_batches(spool, SCHEMA))


def test_offsets_that_point_outside_the_bytes_are_refused(tmp_path):
    spool = tmp_path / "rows"
    with open(spool, "wb") as f:
        for _kind, values in _batch(2)[:2]:
            np.save(f, np.asarray(values))
        np.save(f, np.array([0, 1, 10_000], np.int32))  # text offsets past the end of its bytes
        np.save(f, np.frombuffer(b"ab", np.uint8))
        np.save(f, np.array([0, 0, 1], np.int32))
        np.save(f, np.frombuffer(b"x", np.uint8))
    with pytest.raises(ValueError):
        list(read_batches(spool, SCHEMA))
