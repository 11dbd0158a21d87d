"""s2m-geo batch: manifests, folder pairing, a real LocalCluster, SIGTERM + resume, a hand-started
Dask scheduler/worker, the reports and the quicklooks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from s2m_geo.batch import (
    BatchSettings,
    SceneJob,
    pair_folders,
    read_manifest,
    scene_files,
    sweep_partials,
    verify_scene,
)
from s2m_geo.errors import InputError
from s2m_geo.testing import cli_command

DASK = str(Path(sys.executable).with_name("dask"))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Three 256² synthetic pairs (seeds 1..3)."""
    from s2m_geo.synthetic import SceneSpec, write_scene

    root = tmp_path_factory.mktemp("pairs")
    return {f"s{n}": write_scene(root / f"s{n}", SceneSpec(size=256, seed=n)) for n in (1, 2, 3)}


def _batch(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command("batch", *args),
        capture_output=True,
        text=True,
        timeout=kw.pop("timeout", 300),
        **kw,
    )


def _leftovers(folder: Path) -> list[str]:
    """Temporary or half-written things anywhere under ``folder``."""
    return [str(p) for p in folder.rglob("*") if ".partial" in p.name or p.name.startswith(".")]


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


# --- manifests and folders -----------------------------------------------------------------------


def test_manifest_csv_and_yaml_relative_and_literal_paths(tmp_path):
    data = tmp_path / "my data"
    data.mkdir()
    # a glob would turn "scene [1].tif" into "scene 1.tif": paths must be taken literally
    for name in ("scene [1].tif", "scene 1.tif", "post *.tif"):
        (data / name).write_bytes(b"x")
    (tmp_path / "m.csv").write_text(
        "# a comment line\n"
        "Scene_ID, pre ,post,pre_date,post_date,notes\n"
        "alpha,my data/scene [1].tif,my data/post *.tif,2023-10-01,2024-02-01,extra column ignored\n"
        ",/abs/pre.tif,~/post.tif,,,\n"
        'gamma,"my data/a,b.tif",$HOME/b.tif,,,\n',
        encoding="utf-8",
    )
    jobs = read_manifest(tmp_path / "m.csv")
    assert [j.scene_id for j in jobs] == ["alpha", "pre", "gamma"]  # empty id -> pre's stem
    assert jobs[0].pre == str(data / "scene [1].tif") and jobs[0].post == str(data / "post *.tif")
    assert (jobs[0].pre_date, jobs[0].post_date) == ("2023-10-01", "2024-02-01")
    assert jobs[1].pre == "/abs/pre.tif" and jobs[1].post == str(tmp_path / "~" / "post.tif")  # no ~ expansion
    assert jobs[2].pre == str(data / "a,b.tif") and jobs[2].post == str(tmp_path / "$HOME" / "b.tif")
    assert jobs[1].pre_date is None

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.yaml").write_text(
        "scenes:\n"
        "  - {scene_id: one, pre: '../my data/scene [1].tif', post: 'x y.tif', pre_date: 2023-10-07}\n"
        "  - scene_id: two\n    pre: /vsicurl/https://example.org/a.tif\n    post: s3://bucket/b.tif\n"
    )
    y = read_manifest(tmp_path / "sub" / "m.yaml")
    assert y[0] == SceneJob(
        "one",
        os.path.abspath(tmp_path / "sub" / ".." / "my data" / "scene [1].tif"),
        str(tmp_path / "sub" / "x y.tif"),
        "2023-10-07",
        None,
    )
    assert (y[1].pre, y[1].post) == ("/vsicurl/https://example.org/a.tif", "s3://bucket/b.tif")
    (tmp_path / "list.yml").write_text("- {pre: a.tif, post: b.tif}\n")
    assert read_manifest(tmp_path / "list.yml")[0].scene_id == "a"
    (tmp_path / "semi.csv").write_text("scene_id;pre;post\nx;a.tif;b.tif\n")
    assert read_manifest(tmp_path / "semi.csv")[0].post == str(tmp_path / "b.tif")


@pytest.mark.parametrize(
    "name,text,expect",
    [
        ("m.csv", "scene_id,pre\na,a.tif\n", "row 1: missing 'post'"),
        ("m.csv", "scene_id,pre,post\na,a.tif,b.tif\nA,c.tif,d.tif\n", "appears twice"),
        ("m.csv", "scene_id,pre,post\nx/y,a.tif,b.tif\n", "contains '/'"),
        ("m.csv", "scene_id,pre,post\nall_changes,a.tif,b.tif\n", "cannot be used"),
        ("m.csv", "scene_id,pre,post\na,a.tif,b.tif,c.tif\n", "more cells than header columns"),
        ("m.csv", "scene_id,pre,post\na,a.tif,b.tif\n" + "é" * 200 + ",c.tif,d.tif\n", "row 2: scene_id 'éééé"),
        ("m.csv", "", "empty manifest"),
        ("m.yaml", "scenes: [a, b]\n", "scene 1: expected a mapping"),
        ("m.yaml", "scenes: [{pre: a.tif\n", "not valid YAML"),
        ("m.yaml", "{}\n", "expected a list of scenes"),
        ("m.json", "[]", "unknown manifest type"),
    ],
)
def test_bad_manifest_is_an_input_error_naming_the_file(tmp_path, name, text, expect):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_manifest(path)
    assert str(path) in str(err.value) and expect in str(err.value)


def test_scene_ids_are_limited_in_bytes_so_every_file_name_they_make_fits(tmp_path):
    """A file system allows 255 bytes per name; a scene id's longest name is a temporary of
    its quicklook or raster with a sidecar. The longest id allowed makes names that fit, one
    byte more is refused naming the row and the fix (never shortened behind the user's back)."""
    import tempfile

    from s2m_geo import atomic
    from s2m_geo.batch.layout import MAX_SCENE_ID_BYTES, SIDECAR_BYTES, longest_name_bytes
    from s2m_geo.batch.manifest import check_scene_id

    longest = "é" * (MAX_SCENE_ID_BYTES // 2) + "x" * (MAX_SCENE_ID_BYTES % 2)  # 2-byte characters
    assert len(longest.encode()) == MAX_SCENE_ID_BYTES == 255 - longest_name_bytes("")
    assert check_scene_id(longest, "m.csv: row 1") == longest
    for final in [*scene_files(tmp_path, longest).values(), tmp_path / f"{longest}_changes.qml"]:
        tmp = atomic.temp_path(final)  # a real temporary name, with this process's pid
        worst = tmp.name.replace(f".{os.getpid()}.", ".9999999.") + "-" * SIDECAR_BYTES  # + a sidecar
        assert len(worst.encode()) == atomic.temp_name_bytes(final.name) + SIDECAR_BYTES <= 255
        (tmp_path / worst).touch()
        final.touch()
    with pytest.raises(InputError) as err:
        check_scene_id(longest + "x", "m.csv: row 3")
    msg = str(err.value)
    assert msg.startswith("m.csv: row 3: scene_id ") and f"{MAX_SCENE_ID_BYTES + 1} bytes" in msg
    assert "shorter scene_id" in msg and "\n" not in msg
    with pytest.raises(OSError):  # the limit is the file system's: one name longer fails there
        tempfile.mkstemp(prefix="." + "é" * 128, dir=tmp_path)


@pytest.mark.integration
def test_bad_manifest_exits_2_with_one_line(tmp_path, tiny_model):
    bad = tmp_path / "scenes.csv"
    bad.write_text("scene_id,pre\na,a.tif\n")
    proc = _batch(bad, "-o", tmp_path / "out", "--model", tiny_model, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and str(bad) in proc.stderr and "missing 'post'" in proc.stderr
    assert not (tmp_path / "out").exists()
    missing = _batch(tmp_path / "nope.csv", "-o", tmp_path / "out", "--model", tiny_model, timeout=120)
    assert missing.returncode == 2 and "nope.csv: manifest not found" in missing.stderr
    both = _batch(bad, "--pre-dir", tmp_path, "--post-dir", tmp_path, "-o", tmp_path / "out", timeout=120)
    assert both.returncode == 2 and "not both" in both.stderr


def test_pair_folders_by_file_name(tmp_path):
    pre, post = tmp_path / "pre", tmp_path / "post"
    pre.mkdir(), post.mkdir()
    for name in ("a.tif", "b.TIF", "c.tif", ".hidden.tif", "notes.txt"):
        (pre / name).write_bytes(b"x")
    for name in ("a.tif", "b.TIF", "d.tif", "notes.txt"):
        (post / name).write_bytes(b"x")
    jobs = {j.scene_id: j for j in pair_folders(pre, post)}
    assert sorted(jobs) == ["a", "b", "c", "d"]
    assert (jobs["a"].pre, jobs["a"].post, jobs["a"].error) == (str(pre / "a.tif"), str(post / "a.tif"), None)
    assert jobs["b"].error is None  # the pattern matches case-insensitively
    assert "no file named c.tif" in jobs["c"].error and str(post) in jobs["c"].error
    assert "no file named d.tif" in jobs["d"].error and "pre folder" in jobs["d"].error
    assert [j.scene_id for j in pair_folders(pre, post, "*.txt")] == ["notes"]
    with pytest.raises(InputError, match="no file matching"):
        pair_folders(pre, post, "*.jp2")
    with pytest.raises(InputError, match="post_dir is not a folder") as exc:
        pair_folders(pre, tmp_path / "nope")
    assert exc.value.render({"post_dir": "--post-dir"}).endswith(
        "--post-dir is not a folder; give the folder of the post scenes"
    )


# --- a real LocalCluster -------------------------------------------------------------------------


def _reference(pairs, tiny_model, root: Path) -> dict[str, tuple[Path, Path]]:
    """detect_changes on each pair in this process (the batch must give the same)."""
    import torch

    from s2m_geo.detect import detect_changes
    from s2m_geo.predict.pipeline import PredictOptions

    root.mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the batch's workers (2 workers on 2 cores)
    try:
        out = {}
        for sid, p in pairs.items():
            gpkg, tif = root / f"{sid}.gpkg", root / f"{sid}.tif"
            detect_changes(p["pre"], p["post"], gpkg, tiny_model, PredictOptions(), raster=tif, scene_id=sid)
            out[sid] = (gpkg, tif)
        return out
    finally:
        torch.set_num_threads(threads)


def _assert_same_vectors(a: Path, b: Path) -> None:
    import geopandas as gpd
    import pandas as pd

    for layer in ("changes", "scenes"):
        x, y = gpd.read_file(a, layer=layer), gpd.read_file(b, layer=layer)
        assert len(x) == len(y)
        pd.testing.assert_frame_equal(
            pd.DataFrame(x.drop(columns="geometry")), pd.DataFrame(y.drop(columns="geometry"))
        )
        assert x.geometry.geom_equals_exact(y.geometry, tolerance=0).all()


@pytest.mark.integration
def test_local_cluster_two_workers_three_pairs_and_a_corrupt_one(tmp_path, pairs, tiny_model):
    import geopandas as gpd
    from PIL import Image

    corrupt = tmp_path / "in" / "broken.tif"
    corrupt.parent.mkdir()
    corrupt.write_bytes(pairs["s1"]["pre"].read_bytes()[:3000])  # a truncated GeoTIFF
    rows = [f"{sid},{p['pre']},{p['post']},2023-10-0{i},2024-01-0{i}" for i, (sid, p) in enumerate(pairs.items(), 1)]
    rows.insert(2, f"broken,in/broken.tif,{pairs['s3']['post']},,")
    manifest = tmp_path / "scenes.csv"
    manifest.write_text("scene_id,pre,post,pre_date,post_date\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    proc = _batch(
        manifest, "-o", out, "--model", tiny_model, "--workers", 2, "--threads-per-worker", 1, "--progress", "json"
    )
    assert proc.returncode == 3, proc.stderr
    assert "1 of 4 scenes failed" in proc.stderr.splitlines()[-1]
    progress = [json.loads(x) for x in proc.stderr.splitlines()[:-1]]
    assert {"stage": "scenes", "done": 4, "total": 4} in progress
    assert any(p.get("stage") == "tiles" for p in progress)

    rep = _report(out)
    status = {s["scene_id"]: s for s in rep["scenes"]}
    assert {k: v["status"] for k, v in status.items()} == {"s1": "done", "s2": "done", "broken": "failed", "s3": "done"}
    assert rep["exit_code"] == 3 and rep["failed"] == 1 and rep["complete"] == 3
    assert len({status[s]["worker"] for s in pairs}) == 2  # both worker processes ran scenes
    assert "broken.tif" in status["broken"]["error"]
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "## Failed scenes" in md and "| broken |" in md and "failed" in html
    assert _leftovers(out) == []

    ref = _reference(pairs, tiny_model, tmp_path / "ref")
    total_changes = 0
    for sid, (gpkg, tif) in ref.items():
        files = scene_files(out, sid)
        with rasterio.open(files["raster"]) as a, rasterio.open(tif) as b:
            assert a.crs == b.crs and a.transform == b.transform
            assert np.array_equal(a.read(), b.read())
        _assert_same_vectors(files["gpkg"], gpkg)
        scenes = gpd.read_file(files["gpkg"], layer="scenes")
        for q in json.loads(scenes["quadruples"][0]):  # each scene's sentences, from its scenes layer
            assert q["sentence"] in md and q["sentence"] in html
        n = len(gpd.read_file(files["gpkg"], layer="changes"))
        assert status[sid]["changes"] == n
        total_changes += n
        marker = json.loads(files["marker"].read_text())
        assert marker["layers"] == {"changes": n, "scenes": 1}
        # the raster's QGIS style is published with it, and its hash is part of the check
        assert "paletted" in files["style"].read_text() and "style" in marker["outputs"]
        with Image.open(files["quicklook"]) as im:
            assert im.format == "PNG" and im.width >= 256 and im.height > 256
            rgb = np.asarray(im.convert("RGB"))
        legend = rgb[256:]
        from s2m_geo.classes import load_class_table

        for c in load_class_table().change_classes:  # every class colour is in the legend
            assert (legend == np.array(c.rgb, np.uint8)).all(-1).any(), c.name

    merged_layers = {n for n, _ in __import__("pyogrio").list_layers(out / "all_changes.gpkg")}
    assert {"changes", "scenes"} <= merged_layers
    allc = gpd.read_file(out / "all_changes.gpkg", layer="changes")
    alls = gpd.read_file(out / "all_changes.gpkg", layer="scenes")
    assert len(allc) == total_changes == rep["totals"]["changes"]
    assert sorted(alls["scene_id"]) == ["s1", "s2", "s3"] and sorted(set(allc["scene_id"])) <= ["s1", "s2", "s3"]
    assert list(alls.loc[alls.scene_id == "s2", "pre_date"]) == ["2023-10-02"]
    import sqlite3

    with sqlite3.connect(out / "all_changes.gpkg") as con:
        styled = {r[0] for r in con.execute("SELECT f_table_name FROM layer_styles WHERE useAsDefault")}
    assert styled == {"changes", "scenes"}

    # resume bookkeeping: outputs are verified, not merely present
    settings = BatchSettings(str(out), str(tiny_model))
    settings.model_sha256 = json.loads(scene_files(out, "s1")["marker"].read_text())["model"]["sha256"]
    from s2m_geo.batch.produce import config_hash

    settings.config_hash = config_hash(settings)
    job = SceneJob("s1", str(pairs["s1"]["pre"]), str(pairs["s1"]["post"]), "2023-10-01", "2024-01-01")
    assert verify_scene(job, settings)[0] is not None
    assert verify_scene(job, BatchSettings(str(out), str(tiny_model), min_area_m2=5.0))[0] is None  # other options
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    settings.out_dir = str(copy)
    gpkg = scene_files(copy, "s1")["gpkg"]
    data = bytearray(gpkg.read_bytes())
    data[-100] ^= 0xFF
    gpkg.write_bytes(bytes(data))  # same size, other content
    assert verify_scene(job, settings) == (None, "s1.gpkg differs from what was written")
    scene_files(copy, "s2")["raster"].unlink()
    job2 = SceneJob("s2", str(pairs["s2"]["pre"]), str(pairs["s2"]["post"]))
    assert verify_scene(job2, settings)[1] == "s2_changes.tif is missing"


# --- SIGTERM, then resume ------------------------------------------------------------------------


@pytest.mark.integration
def test_sigterm_mid_batch_then_rerun_resumes_without_redoing(tmp_path, pairs, tiny_model):
    import psutil

    ids = [f"scene {i}" for i in range(6)]  # spaces in ids and paths
    manifest = tmp_path / "the manifest.yaml"
    manifest.write_text(
        "".join(
            f"- {{scene_id: '{sid}', pre: '{pairs[f's{i % 3 + 1}']['pre']}', "
            f"post: '{pairs[f's{i % 3 + 1}']['post']}'}}\n"
            for i, sid in enumerate(ids)
        )
    )
    out = tmp_path / "out dir"
    cmd = cli_command("batch", manifest, "-o", out, "--model", tiny_model, "--workers", "1", "--progress", "json")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not list(out.glob("*.done.json")):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() - t0 < 180, "no scene finished"
            time.sleep(0.05)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err.splitlines()[-1]
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"worker processes left behind: {alive}"
    assert _leftovers(out) == []
    done = sorted(p.name[: -len(".done.json")] for p in out.glob("*.done.json"))
    assert 1 <= len(done) < len(ids)
    for sid in done:  # a marker exists only beside complete outputs
        assert all(p.exists() for p in scene_files(out, sid).values())
    for f in out.iterdir():
        sid = f.name.split("_")[0].split(".")[0]
        assert sid in done, f"{f.name}: output of an unfinished scene"
    before = {
        p.name: p.stat().st_mtime_ns
        for p in out.iterdir()
        if any(p.name.startswith(s + ".") or p.name.startswith(s + "_") for s in done)
    }

    # the rerun also asks for a GPU resource per scene: the local workers advertise it
    again = subprocess.run(cmd + ["--gpu-per-task", "1"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    rep = _report(out)
    assert {s["scene_id"]: s["status"] for s in rep["scenes"]} == {
        sid: ("skipped" if sid in done else "done") for sid in ids
    }
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before  # not redone
    assert f"{len(ids)} scenes, {len(ids) - len(done)} done, {len(done)} already complete, 0 failed" in again.stdout
    assert _leftovers(out) == []
    assert json.loads(again.stderr.splitlines()[0]) == {"stage": "scenes", "done": len(done), "total": len(ids)}


def test_sweep_removes_what_a_killed_run_left(tmp_path):
    (tmp_path / ".a.x1y2.partial").mkdir()
    (tmp_path / ".a.x1y2.partial" / "a.gpkg").write_bytes(b"half")
    (tmp_path / ".all_changes.abc.partial.gpkg").write_bytes(b"half")
    (tmp_path / ".all_changes.abc.partial.gpkg-journal").write_bytes(b"half")
    (tmp_path / "keep.gpkg").write_bytes(b"ok")
    assert len(sweep_partials(tmp_path)) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["keep.gpkg"]


# --- a cluster started by hand ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the CLI and the worker it spawned
        proc.wait(timeout=20)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=20)


@pytest.mark.integration
def test_batch_on_a_scheduler_and_worker_started_by_hand(tmp_path, pairs, tiny_model):
    from s2m_geo.synthetic import SceneSpec, write_scene

    pre, post = tmp_path / "pre", tmp_path / "post"
    pre.mkdir(), post.mkdir()
    for sid in ("s1", "s2"):
        shutil.copy(pairs[sid]["pre"], pre / f"{sid}.tif")
        shutil.copy(pairs[sid]["post"], post / f"{sid}.tif")
    far = write_scene(tmp_path / "far", SceneSpec(size=64, seed=9, origin=(500000.0, 3000000.0)))
    shutil.copy(pairs["s3"]["pre"], pre / "disjoint.tif")
    shutil.copy(far["post"], post / "disjoint.tif")  # footprints that do not overlap

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                stdout=open(logs / "scheduler.log", "w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    DASK,
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                ],
                stdout=open(logs / "worker.log", "w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        out = tmp_path / "out"
        proc = _batch(
            "--pre-dir",
            pre,
            "--post-dir",
            post,
            "-o",
            out,
            "--model",
            tiny_model,
            "--scheduler",
            address,
            "--torch-threads",
            1,
        )
        assert proc.returncode == 3, proc.stderr + (logs / "worker.log").read_text()
        rep = _report(out)
        status = {s["scene_id"]: s for s in rep["scenes"]}
        assert {k: v["status"] for k, v in status.items()} == {"disjoint": "failed", "s1": "done", "s2": "done"}
        assert "footprints do not overlap" in status["disjoint"]["error"]
        assert {status["s1"]["worker"], status["s2"]["worker"]} == {status["s1"]["worker"]}
        assert status["s1"]["worker"].startswith("tcp://127.0.0.1:")
        assert "footprints do not overlap" in (out / "report.md").read_text()

        # --force redoes complete scenes (on the warm worker); only pairs this time: exit 0
        os.remove(pre / "disjoint.tif")
        os.remove(post / "disjoint.tif")
        marker = scene_files(out, "s1")["marker"]
        was = marker.stat().st_mtime_ns
        forced = _batch(
            "--pre-dir", pre, "--post-dir", post, "-o", out, "--model", tiny_model, "--scheduler", address, "--force"
        )
        assert forced.returncode == 0, forced.stderr
        assert marker.stat().st_mtime_ns != was
        assert [s["status"] for s in _report(out)["scenes"]] == ["done", "done"]

        # scenes above --split-above run from the client, their blocks spread over the workers
        ref = tmp_path / "ref"
        ref.mkdir()
        for sid in ("s1", "s2"):
            for key in ("gpkg", "raster"):
                shutil.copy(scene_files(out, sid)[key], ref / scene_files(out, sid)[key].name)
        split = _batch(
            "--pre-dir",
            pre,
            "--post-dir",
            post,
            "-o",
            out,
            "--model",
            tiny_model,
            "--scheduler",
            address,
            "--force",
            "--split-above",
            0.01,
            "--block-tiles",
            2,
            "--progress",
            "json",
        )
        assert split.returncode == 0, split.stderr
        assert [s["worker"] for s in _report(out)["scenes"]] == ["(split over the cluster)"] * 2
        assert '"stage": "tiles"' in split.stderr
        for sid in ("s1", "s2"):
            files = scene_files(out, sid)
            with rasterio.open(files["raster"]) as a, rasterio.open(ref / files["raster"].name) as b:
                assert np.array_equal(a.read(), b.read())
            _assert_same_vectors(files["gpkg"], ref / files["gpkg"].name)

        nogpu = _batch(
            "--pre-dir",
            pre,
            "--post-dir",
            post,
            "-o",
            out,
            "--model",
            tiny_model,
            "--scheduler",
            address,
            "--gpu-per-task",
            1,
            "--force",
        )
        assert nogpu.returncode == 2 and "no worker offers the resource GPU=1" in nogpu.stderr
        assert _leftovers(out) == []
    finally:
        for p in reversed(procs):
            _stop(p)
    assert all(p.poll() is not None for p in procs)


def test_a_local_cluster_beside_another_dashboard_prints_nothing(recwarn):
    """Another Dask dashboard on :8787 (a notebook, a second batch) must not put distributed's
    'Port 8787 is already in use' warning into a batch's output, which --progress json reads."""
    import socket

    from s2m_geo.batch.cluster import start_client

    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    except OSError:
        pass  # something already holds it: the same situation
    try:
        client, cluster = start_client(None, 1, 1, "1GiB", None, 30)
        try:
            assert cluster.scheduler.http_server.port != 8787
        finally:
            client.close()
            cluster.close()
    finally:
        holder.close()
    assert not [w for w in recwarn if "already in use" in str(w.message)]
