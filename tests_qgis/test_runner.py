"""The subprocess side: finding the executable, the child's environment, progress, cancel.

These use a fake s2m-geo (a small script) so they are fast and can misbehave on purpose.
"""

import os
import signal
import time

import pytest
from s2m_geo_qgis import runner


def _exe(path):
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


def test_executable_order_setting_env_path(tmp_path):
    a, b = _exe(tmp_path / "a"), _exe(tmp_path / "b")
    (tmp_path / "onpath").mkdir()
    c = _exe(tmp_path / "onpath" / "s2m-geo")
    env = {"S2M_GEO_EXECUTABLE": b, "PATH": str(tmp_path / "onpath")}
    assert runner.find_executable(a, env) == a  # the setting wins
    assert runner.find_executable("", env) == b  # then the variable
    assert runner.find_executable(None, {"PATH": env["PATH"]}) == c  # then PATH


def test_missing_executable_message_says_how_to_install(tmp_path):
    with pytest.raises(runner.ExecutableNotFound) as exc:
        runner.find_executable("", {"PATH": str(tmp_path)})
    msg = str(exc.value)
    assert "not found" in msg and "pip install s2m-geo" in msg and "S2M_GEO_EXECUTABLE" in msg
    with pytest.raises(runner.ExecutableNotFound, match="plugin settings"):
        runner.find_executable(str(tmp_path / "nope"), {"PATH": ""})
    with pytest.raises(runner.ExecutableNotFound, match="S2M_GEO_EXECUTABLE names"):
        runner.find_executable("", {"S2M_GEO_EXECUTABLE": str(tmp_path / "nope")})


def test_clean_env_drops_qgis_python_and_gdal_settings():
    env = runner.clean_env(
        {
            "PATH": "/usr/bin",
            "HOME": "/root",
            "PYTHONPATH": "/usr/share/qgis/python",
            "PYTHONHOME": "/usr",
            "QGIS_PREFIX_PATH": "/usr",
            "PROJ_LIB": "/usr/share/proj",
            "GDAL_DATA": "/usr/share/gdal",
            "CUDA_VISIBLE_DEVICES": "0",
        }
    )
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/root" and env["CUDA_VISIBLE_DEVICES"] == "0"
    for k in ("PYTHONPATH", "PYTHONHOME", "QGIS_PREFIX_PATH", "PROJ_LIB", "GDAL_DATA"):
        assert k not in env
    assert env["PYTHONUNBUFFERED"] == "1"


def test_command_is_a_list_and_omits_defaults():
    cmd = runner.build_command("/x/s2m-geo", "/d/pre one.tif", "/d/post.tif", "/o/c.gpkg")
    assert cmd[:6] == ["/x/s2m-geo", "predict", "/d/pre one.tif", "/d/post.tif", "-o", "/o/c.gpkg"]
    assert "--model" not in cmd and "--tile-size" not in cmd and "--overlap" not in cmd
    assert "--raster" not in cmd
    assert cmd[-2:] == ["--progress", "json"] and "--overwrite" in cmd
    cmd = runner.build_command(
        "s",
        "a",
        "b",
        "c.gpkg",
        model="m.safetensors",
        raster="r.tif",
        tile_size=256,
        overlap=0,
        device="cuda",
        min_area=25,
    )
    for flag, value in (
        ("--model", "m.safetensors"),
        ("--raster", "r.tif"),
        ("--tile-size", "256"),
        ("--overlap", "0"),
        ("--device", "cuda"),
        ("--min-area", "25.0"),
    ):
        assert cmd[cmd.index(flag) + 1] == value


def test_overall_percent():
    assert runner.overall_percent("infer", 0, 10) == 0
    assert runner.overall_percent("infer", 10, 10) == 90
    assert runner.overall_percent("vectorize", 1, 1) == 100
    assert runner.overall_percent("other", 1, 4) == 25
    assert runner.overall_percent("infer", 1, 0) is None
    assert runner.overall_percent("infer", "x", None) is None


def test_run_reads_progress_messages_and_output(fake_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/usr/share/qgis/python/plugins")
    monkeypatch.setenv("PYTHONHOME", "/usr")
    out = tmp_path / "c.gpkg"
    seen, messages, lines = [], [], []
    res = runner.run_cli(
        runner.build_command(fake_cli.path, "pre.tif", "post.tif", str(out)),
        outputs=[str(out)],
        on_progress=lambda s, d, t: seen.append((s, d, t)),
        on_message=messages.append,
        on_output=lines.append,
    )
    assert res.returncode == 0 and not res.canceled and out.exists()
    assert seen[0] == ("infer", 1, 4) and seen[-1] == ("vectorize", 1, 1)
    assert messages == ["fake model loaded"]
    assert lines == [f"{out}: fake run, 0 change polygons"]
    env = fake_cli.record()["env"]
    assert "PYTHONPATH" not in env and "PYTHONHOME" not in env  # the child gets a clean env


def test_warnings_reach_on_warning_and_fall_back_to_on_message(fake_cli, tmp_path):
    out = tmp_path / "c.gpkg"
    cmd = runner.build_command(fake_cli.path, "same.tif", "same.tif", str(out))
    warned, messages = [], []
    res = runner.run_cli(cmd, outputs=[str(out)], on_message=messages.append, on_warning=warned.append)
    assert res.returncode == 0 and warned == ["same.tif is given as both pre and post"]
    assert messages == ["fake model loaded"] and not res.errors
    out.unlink()
    messages = []
    runner.run_cli(cmd, outputs=[str(out)], on_message=messages.append)
    assert messages == ["fake model loaded", "same.tif is given as both pre and post"]


def test_same_file_resolves_links(tmp_path):
    a = tmp_path / "a.tif"
    a.write_bytes(b"x")
    (tmp_path / "link.tif").symlink_to(a)
    assert runner.same_file(str(a), str(tmp_path / "link.tif"))
    assert runner.same_file(str(a), str(tmp_path / "sub" / ".." / "a.tif"))
    assert not runner.same_file(str(a), str(tmp_path / "b.tif"))


def test_failure_keeps_the_cli_message(fake_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_S2M_MODE", "fail")
    out = tmp_path / "c.gpkg"
    res = runner.run_cli(runner.build_command(fake_cli.path, "pre.tif", "post.tif", str(out)), outputs=[str(out)])
    assert res.returncode == 2
    msg = runner.describe_failure(res)
    assert "exit code 2" in msg and "s2m-geo: error: pre.tif: not a raster" in msg
    assert not out.exists()


def test_ok_codes_keep_what_the_run_wrote(tmp_path):
    """An exit code the caller accepts (batch: 3, some scenes failed) is not a failure: the
    outputs stay; any other non-zero code removes what the run created."""
    exe = tmp_path / "exit3"
    exe.write_text('#!/bin/sh\necho made > "$1"\nexit 3\n')
    exe.chmod(0o755)
    out = tmp_path / "all_changes.gpkg"
    res = runner.run_cli([str(exe), str(out)], outputs=[str(out)], ok_codes=(0, 3))
    assert res.returncode == 3 and out.read_text() == "made\n" and not res.removed
    res = runner.run_cli([str(exe), str(out)], outputs=[str(out)])
    assert res.returncode == 3 and not out.exists() and res.removed == [str(out)]


def test_batch_percent_never_goes_back_and_ends_at_the_reports():
    pct = runner.BatchPercent()
    lines = [
        ("scenes", 0, 3),
        ("tiles", 4, 25),
        ("tiles", 25, 25),
        ("scenes", 1, 3),
        ("tiles", 29, 50),  # the second scene started: the tile total grew
        ("tiles", 50, 50),
        ("scenes", 2, 3),
        ("scenes", 3, 3),  # the third failed without a tile
    ]
    got = [pct(*line) for line in lines]
    end = runner.BATCH_SCENES_END
    assert got[0] == 0 and got[1] == pytest.approx(end * 4 / 25 / 3)
    assert got[2] == pytest.approx(end / 3) == got[3]
    assert got[4] == pytest.approx(end * (1 + 4 / 25) / 3)
    assert got[-1] == end and got == sorted(got)
    assert pct("tiles", 10, 60) == end  # never backwards
    assert pct("other", 1, 1) is None and pct("tiles", "x", None) is None
    two = runner.BatchPercent()  # two scenes at once: tiles fill the step to the next scene, no more
    assert two("scenes", 0, 4) == 0 and two("tiles", 50, 50) == pytest.approx(end / 4)


def test_batch_command_is_a_list():
    cmd = runner.build_batch_command("/x/s2m-geo", "/o/out dir", pre_dir="/d/pre", post_dir="/d/post", pattern="*.TIF")
    assert cmd == [
        "/x/s2m-geo",
        "batch",
        "-o",
        "/o/out dir",
        "--pre-dir",
        "/d/pre",
        "--post-dir",
        "/d/post",
        "--pattern",
        "*.TIF",
        "--device",
        "auto",
        "--min-area",
        "0.0",
        "--progress",
        "json",
    ]
    cmd = runner.build_batch_command(
        "s",
        "out",
        manifest="-scenes.csv",
        model="m.onnx",
        workers=2,
        tile_size=256,
        overlap=0,
        device="cpu",
        min_area=5,
    )
    assert cmd[-2:] == ["--", "-scenes.csv"] and "--pre-dir" not in cmd and "--overwrite" not in cmd
    for flag, value in (("--model", "m.onnx"), ("--workers", "2"), ("--tile-size", "256"), ("--overlap", "0")):
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[cmd.index("--device") + 1] == "cpu" and cmd[cmd.index("--min-area") + 1] == "5.0"


def _gone(pid):
    """No such process, or only a zombie (killed, not yet reaped by whoever adopted it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_cancel_kills_a_stubborn_child_and_its_group_and_removes_leftovers(fake_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_S2M_MODE", "hang")  # ignores SIGTERM, leaves .partial files
    out, ras = tmp_path / "o" / "c.gpkg", tmp_path / "o" / "c.tif"
    out.parent.mkdir()
    (out.parent / "unrelated.txt").write_text("keep me")
    seen = []
    t0 = time.monotonic()
    res = runner.run_cli(
        runner.build_command(fake_cli.path, "pre.tif", "post.tif", str(out), raster=str(ras)),
        outputs=[str(out), str(ras)],
        on_progress=lambda s, d, t: seen.append(d),
        is_canceled=lambda: len(seen) >= 3,
        grace=0.5,
    )
    assert res.canceled and res.returncode == -signal.SIGKILL
    assert time.monotonic() - t0 < 10
    assert _gone(res.pid)
    grandchild = int(open(str(fake_cli.log_path) + ".grandchild").read())
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:  # reaped by init
        time.sleep(0.05)
    assert _gone(grandchild), "the child's own child survived the cancel"
    assert sorted(os.listdir(out.parent)) == ["unrelated.txt"]  # partial files removed
    assert len(res.removed) == 2
