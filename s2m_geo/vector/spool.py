"""Rows of a vector layer kept on disk until it is written: batches of columns as ``.npy``
records, one after another in one file.

Numbers are stored as their arrays; text and WKB as the Arrow layout (int32 offsets, then the
bytes), so a batch read back becomes Arrow columns without a pass per value. Only numpy's
own format is read (``allow_pickle=False``): the spool lies in the output folder, and nothing
found there may be able to run code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np


def _save(f: IO[bytes], array: np.ndarray) -> None:
    np.save(f, array, allow_pickle=False)


def write_batch(f: IO[bytes], columns: Sequence[tuple[str, Any]]) -> None:
    """Append one batch: ``(kind, values)`` per column, in the order they are read back;
    ``kind`` is ``"number"`` (a numpy array), ``"text"`` (str) or ``"binary"`` (bytes)."""
    for kind, values in columns:
        if kind == "number":
            _save(f, np.asarray(values))
            continue
        items = [v.encode("utf-8") for v in values] if kind == "text" else list(values)
        offsets = np.zeros(len(items) + 1, np.int32)
        offsets[1:] = np.cumsum([len(b) for b in items])
        _save(f, offsets)
        _save(f, np.frombuffer(b"".join(items), np.uint8))


def read_batches(path: Any, schema: Any) -> Iterator[Any]:
    """The batches of the spool at ``path`` as Arrow record batches of ``schema``, one at a
    time: numbers for its numeric fields, text for ``string`` and WKB for ``binary`` ones
    (NaN numbers become nulls). A damaged spool raises ``ValueError`` (Arrow's
    ``ArrowInvalid`` is one)."""
    import pyarrow as pa

    with open(path, "rb") as f:
        while True:
            arrays = []
            for i, field in enumerate(schema):
                try:
                    first = np.load(f, allow_pickle=False)
                except EOFError:
                    if i == 0:
                        return
                    raise ValueError(f"{path}: the spool ends inside a batch") from None
                if pa.types.is_string(field.type) or pa.types.is_binary(field.type):
                    blob = np.load(f, allow_pickle=False)
                    buffers = [None, pa.py_buffer(first), pa.py_buffer(blob)]
                    arrays.append(pa.Array.from_buffers(field.type, len(first) - 1, buffers))
                else:
                    arrays.append(pa.array(first, field.type, from_pandas=True))
            batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
            batch.validate(full=True)  # offsets within the bytes, text UTF-8: never a wild read
            yield batch


__all__ = ["write_batch", "read_batches"]
