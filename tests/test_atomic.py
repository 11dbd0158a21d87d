"""The one atomic-output mechanism (s2m_geo/atomic.py) and the QGIS runner's copy of its names."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from s2m_geo import atomic

ROOT = Path(__file__).resolve().parents[1]


def test_temp_name_pattern(tmp_path):
    final = tmp_path / "changes.gpkg"
    tmp = atomic.temp_path(final)
    assert tmp.parent == tmp_path and tmp.is_file()
    assert tmp.name.startswith(".changes.gpkg.") and tmp.name.endswith(".partial.gpkg")
    assert atomic.is_partial(tmp.name) and not atomic.is_partial(final.name)
    assert not atomic.is_partial("changes.partial.gpkg")  # not hidden: a user's own file
    d = atomic.temp_dir(tmp_path / "scene1.gpkg")
    assert d.is_dir() and atomic.is_partial(d.name) and d.name.startswith(".scene1.gpkg.")
    assert atomic.temp_path(final, create=False).exists() is False


def test_qgis_runner_copy_is_equal(tmp_path, qgis_runner):
    runner = qgis_runner
    assert runner.PARTIAL_MARK == atomic.PARTIAL_MARK
    final = tmp_path / "out.tif"
    assert runner.temp_prefix(final) == atomic.temp_prefix(final)
    made = {str(atomic.temp_path(final)), str(atomic.temp_dir(final))}
    (tmp_path / "other.tif").write_bytes(b"x")
    atomic.temp_path(tmp_path / "other.tif")  # another output's temp file is not ours
    assert set(runner._temp_siblings(final)) == made


def test_publish_gives_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        assert atomic.current_umask() == 0o027
        path = atomic.write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_leaves_nothing(tmp_path):
    final = tmp_path / "x.png"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert final.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_umask_is_never_changed_while_threads_write(tmp_path, monkeypatch):
    """Other threads creating files meanwhile always get the process umask: the writers read
    it without setting it (os.umask would briefly make it 0 for every thread)."""
    old = os.umask(0o022)
    calls = []
    real_umask = os.umask
    monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real_umask(m))
    stop = threading.Event()
    bad: list[str] = []

    def other_writer(i: int) -> None:
        n = 0
        while not stop.is_set():
            p = tmp_path / f"t{i}-{n}"
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            os.close(fd)
            if mode != 0o644:
                bad.append(f"{p.name}: {oct(mode)}")
            p.unlink()
            n += 1

    threads = [threading.Thread(target=other_writer, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        for k in range(300):
            atomic.write_json(tmp_path / f"o{k}.json", {"k": k})
            atomic.publish(atomic.temp_path(tmp_path / f"p{k}.bin"), tmp_path / f"p{k}.bin")
    finally:
        stop.set()
        for t in threads:
            t.join()
        real_umask(old)
    assert calls == [] and bad == []
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in tmp_path.glob("[op]*"))


def test_every_writer_uses_the_atomic_module():
    """No other module renames temp files or reads the umask its own way."""
    for path in (ROOT / "s2m_geo").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name == "atomic.py":
            continue
        assert "os.umask(" not in text, path
        assert "mkstemp(" not in text and "mkdtemp(" not in text, path


def test_published_together_is_all_or_nothing(tmp_path, monkeypatch):
    a, b = tmp_path / "a.tif", tmp_path / "b.gpkg"
    with atomic.published_together():
        atomic.write_text(a, "A")
        with atomic.atomic_path(b) as tmp:
            tmp.write_text("B")
        assert not a.exists() and not b.exists()  # held back until the block ends
        with atomic.published_now():  # a cache entry is read during the run
            atomic.write_text(tmp_path / "cache.onnx", "C")
        assert (tmp_path / "cache.onnx").read_text() == "C"
    assert a.read_text() == "A" and b.read_text() == "B"
    a.unlink(), b.unlink()
    with pytest.raises(KeyboardInterrupt), atomic.published_together():
        atomic.write_text(a, "A")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the vector stage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.onnx"]  # no output, no temporary
    real = os.replace
    calls = []

    def interrupted(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # between the two renames
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt), atomic.published_together():
        atomic.write_text(a, "A")
        atomic.write_text(b, "B")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.onnx"]  # the first rename undone


def test_stale_temporaries_of_dead_processes_are_swept(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    final = tmp_path / "c.gpkg"
    stale = tmp_path / f".c.gpkg.{dead_pid}.abc123.partial.gpkg"
    live = tmp_path / f".c.gpkg.{os.getpid()}.def456.partial.gpkg"
    other = tmp_path / f".d.gpkg.{dead_pid}.abc123.partial.gpkg"  # another output's
    for p in (stale, live, other):
        p.write_text("x")
    assert atomic.temp_path(final).name.startswith(f".c.gpkg.{os.getpid()}.")
    assert atomic.sweep_stale(final) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_a_full_disk_is_told_with_the_file_it_was_writing(tiny_tmpfs):
    """write() on a full disk raises an OSError that names no file; the error names the output
    (the command line then says which file, not 'a file'), and nothing is left."""
    import errno

    disk = tiny_tmpfs("64k")
    final = disk / "report.json"
    with pytest.raises(OSError) as err:
        atomic.write_bytes(final, b"x" * (1 << 20))
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(final)
    assert list(disk.iterdir()) == []
