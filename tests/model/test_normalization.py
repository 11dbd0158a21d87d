"""The one reading of a model's normalisation, at training and at prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2m_geo.model.normalization import IMAGENET, Normalization


def test_training_and_prediction_feed_the_model_the_same_values():
    norm = Normalization((0.3, 0.4, 0.5), (0.2, 0.25, 0.3), 10000.0)
    raw = np.random.default_rng(0).uniform(0, 10000, (3, 8, 8)).astype(np.float32)
    units = raw * np.float32(255.0 / norm.scale)  # what the scene hands the runners
    mean, std = norm.for_0_255()
    np.testing.assert_allclose((units - mean) / std, norm(raw), rtol=1e-5, atol=1e-5)
    expect = (raw[1] / 10000.0 - 0.4) / 0.25
    np.testing.assert_allclose(norm(raw)[1], expect, rtol=1e-5, atol=1e-5)


def test_json_round_trip_and_defaults():
    assert Normalization.from_dict(IMAGENET.to_dict()) == IMAGENET
    assert Normalization.from_dict({"mean": [0.5], "std": [0.5]}) == Normalization((0.5,), (0.5,), 255.0)
    assert IMAGENET.to_dict() == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 255.0}


@pytest.mark.parametrize(
    "d, bands, words",
    [
        ({"mean": [0.5] * 3, "std": [0.5] * 3, "scale": math.nan}, 3, "finite"),
        ({"mean": [math.nan] * 3, "std": [0.5] * 3}, 3, "finite"),
        ({"mean": [0.5] * 3, "std": [math.inf] * 3}, 3, "finite"),
        ({"mean": [0.5] * 3, "std": [0.5, 0.0, 0.5]}, 3, "positive"),
        ({"mean": [0.5] * 3, "std": [0.5] * 3, "scale": -1}, 3, "positive"),
        ({"mean": [0.5] * 3, "std": [0.5] * 2}, None, "as many means as stds"),
        ({"mean": [0.5] * 4, "std": [0.5] * 4}, 3, "needs 3 means"),
        ({"std": [0.5] * 3}, 3, "must be {"),
        ({"mean": "abc", "std": [0.5] * 3}, 3, "must be {"),
        ([1, 2], 3, "must be {"),
    ],
)
def test_bad_normalisations_are_refused(d, bands, words):
    with pytest.raises(ValueError, match=words if words != "must be {" else r"must be \{"):
        Normalization.from_dict(d, bands)
