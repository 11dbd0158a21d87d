"""realmix pairs: determinism, kinds, labels only where the epochs differ, class ids."""

from __future__ import annotations

import numpy as np
import pytest

from s2m_geo.classes import class_table_from_dict, load_class_table
from s2m_geo.errors import InputError
from s2m_geo.train import realmix as rm


def _diff(p: rm.RealPair) -> np.ndarray:
    return np.abs(p.pre.astype(np.int16) - p.post.astype(np.int16)).mean(-1)


def test_synthesize_pair_is_deterministic(tile):
    for s in range(4):
        p = rm.synthesize_pair(tile(s), np.random.default_rng([9, s]), [tile(50 + s)])
        q = rm.synthesize_pair(tile(s), np.random.default_rng([9, s]), [tile(50 + s)])
        assert (p.pre.tobytes(), p.post.tobytes(), p.label.tobytes()) == (
            q.pre.tobytes(),
            q.post.tobytes(),
            q.label.tobytes(),
        )
        assert p.kind == q.kind and p.objects == q.objects


def test_no_change_kinds_have_zero_labels(tile):
    for s in range(6):
        same = rm.synthesize_pair(tile(s), np.random.default_rng(s), kind="identical")
        assert np.array_equal(same.pre, same.post) and not same.label.any()
        nc = rm.synthesize_pair(tile(s), np.random.default_rng(s), kind="nochange")
        assert not nc.label.any() and not np.array_equal(nc.pre, nc.post)
        dis = rm.synthesize_pair(tile(s), np.random.default_rng(s), kind="distractor")
        assert not dis.label.any() and dis.pre.shape == dis.post.shape == tile(s).shape


def test_change_labels_only_where_pre_and_post_differ(tile):
    seen: set[int] = set()
    inside, level = [], []
    for s in range(30):
        bg, donor = tile(100 + s), tile(200 + s)
        clean = rm.synthesize_pair(bg, np.random.default_rng(s), [donor], kind="change", nuisance=False)
        assert clean.objects, "a change pair places at least one object"
        d = _diff(clean)
        for c in np.unique(clean.label)[1:]:
            m = clean.label == c
            seen.add(int(c))
            # every labelled object really changed between the (clean) epochs
            assert d[m].mean() > 12, (s, c, d[m].mean())
            assert (d[m] > 6).mean() > 0.8, (s, c)
        # the same pair with the nuisance: labelled pixels stand out from the pseudo-change level
        noisy = rm.synthesize_pair(bg, np.random.default_rng(s), [donor], kind="change")
        assert np.array_equal(noisy.label, clean.label)
        nc = rm.synthesize_pair(bg, np.random.default_rng(1000 + s), kind="nochange")
        level.append(np.median(_diff(nc)))
        inside += [np.median(_diff(noisy)[noisy.label == c]) for c in np.unique(noisy.label)[1:]]
    assert seen == set(range(1, 7))  # every change class is drawn
    assert np.median(inside) > 2 * np.median(level), (np.median(inside), np.median(level))


def test_label_ids_follow_the_table(tile):
    table = load_class_table()
    for s in range(10):
        p = rm.synthesize_pair(tile(s), np.random.default_rng(s), kind="change")
        assert p.label.dtype == np.uint8 and p.label.max() < table.num_classes
    # only the classes asked for
    only = {"greenhouse_new": 6, "building_new": 2}
    for s in range(8):
        p = rm.synthesize_pair(tile(s), np.random.default_rng(s), ids=only, kind="change")
        assert set(np.unique(p.label)) <= {0, 2, 6}
    # a two-class table gets every change as 1; a table without those classes is refused
    binary = class_table_from_dict(
        {
            "name": "bin",
            "classes": [
                {"id": 0, "name": "no_change", "category": "none", "change_type": "none", "color": "#000000"},
                {"id": 1, "name": "change", "category": "change", "change_type": "changed", "color": "#ffffff"},
            ],
        }
    )
    assert set(rm.class_ids(binary).values()) == {1}
    other = class_table_from_dict(
        {
            "name": "x",
            "classes": [
                {"id": 0, "name": "no_change", "category": "none", "change_type": "none", "color": "#000000"},
                {"id": 1, "name": "tree_lost", "category": "tree", "change_type": "lost", "color": "#00ff00"},
                {"id": 2, "name": "tree_new", "category": "tree", "change_type": "new", "color": "#00aa00"},
            ],
        }
    )
    with pytest.raises(InputError, match="none of the realmix classes"):
        rm.class_ids(other)


def test_kinds_mix_has_enough_no_change(tile):
    kinds = [rm.synthesize_pair(tile(0, 64), np.random.default_rng(s), nuisance=False).kind for s in range(200)]
    assert 0.25 <= sum(k != "change" for k in kinds) / len(kinds) <= 0.5
    assert "identical" in kinds and "distractor" in kinds
