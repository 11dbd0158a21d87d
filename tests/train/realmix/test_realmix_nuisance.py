"""realmix nuisance (pseudo-change): dtypes, layouts, bounds, determinism."""

from __future__ import annotations

import numpy as np

from s2m_geo.train import realmix as rm


def test_pseudo_change_keeps_dtype_shape_and_is_bounded(tile):
    img = tile(0)
    for s in range(8):
        out = rm.pseudo_change(img, np.random.default_rng(s))
        assert out.dtype == np.uint8 and out.shape == img.shape
        d = np.abs(out.astype(np.int16) - img).mean(-1)
        assert 0.3 < d.mean() < 35, d.mean()  # it changes pixels, but not wholesale
        assert np.percentile(d, 99) < 90
    # other layouts and dtypes
    u16 = img[..., 0].astype(np.uint16) * 200
    o16 = rm.pseudo_change(u16, np.random.default_rng(1))
    assert o16.dtype == np.uint16 and o16.shape == u16.shape
    assert np.abs(o16.astype(np.float64) - u16).mean() < 0.15 * 65535
    f = img.astype(np.float32) / 255
    of = rm.pseudo_change(f, np.random.default_rng(2))
    assert of.dtype == np.float32 and of.shape == f.shape and 0 <= of.min() and of.max() <= 1
    four = np.concatenate([img, img[..., :1]], -1)
    assert rm.pseudo_change(four, np.random.default_rng(3)).shape == four.shape
    assert np.array_equal(rm.pseudo_change(img, np.random.default_rng(4), strength=0), img)


def test_pseudo_change_is_deterministic_and_varies(tile):
    img = tile(1)
    a = rm.pseudo_change(img, np.random.default_rng(5))
    b = rm.pseudo_change(img, np.random.default_rng(5))
    c = rm.pseudo_change(img, np.random.default_rng(6))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
