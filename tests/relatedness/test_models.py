"""Relatedness read from models, against hand computations and known invariances."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from manytask.config import parse_config
from manytask.relatedness import correlation_matrix, load_matrices, parameter_cosine, representation_similarity
from manytask.runs import relate, train


def test_parameter_cosine_by_hand() -> None:
    matrix = parameter_cosine(np.array([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]]), ["a", "b", "c"])
    assert matrix.values[0, 1] == pytest.approx(1 / np.sqrt(2)) and matrix.values[0, 2] == pytest.approx(-1.0)
    assert np.isnan(matrix.values[1, 1])


def test_a_covariance_becomes_its_correlation() -> None:
    matrix = correlation_matrix(np.array([[4.0, 1.0], [1.0, 1.0]]), ["a", "b"], "c", "C", "")
    assert matrix.values[0, 1] == pytest.approx(1.0 / (2.0 * 1.0))


def test_rsa_ignores_each_samples_scale_and_offset_and_sees_unrelated_features() -> None:
    """Correlation distance between samples is unchanged by scaling a representation and adding a
    constant: RSA 1; independent features: RSA near 0."""
    rng = np.random.default_rng(0)
    first = rng.normal(size=(60, 8))
    matrix = representation_similarity({"a": first, "b": 3 * first + 1, "c": rng.normal(size=(60, 8))})
    assert matrix.values[0, 1] == pytest.approx(1.0)
    assert abs(matrix.values[0, 2]) < 0.1
    with pytest.raises(ValueError, match="RSA needs"):
        representation_similarity({"a": np.zeros(5)})


def test_a_relationship_network_writes_its_learned_correlation(tmp_path: Path) -> None:
    config = {"data": {"name": "demo", "n_train": 200, "n_val": 40, "n_test": 40},
              "model": {"name": "relationship"}, "training": {"steps": 10, "eval_every": 10, "progress": False},
              "relatedness": {"every": 5, "lookahead": False}}
    train(parse_config(config), run_dir=tmp_path / "run")
    found = {m.name: m for m in load_matrices(tmp_path / "run")}
    assert "relationship_correlation" in found and "tag_affinity" not in found
    off = found["relationship_correlation"].values[~np.eye(3, dtype=bool)]
    assert np.all(np.abs(off) <= 1 + 1e-9)


def test_relate_with_linear_and_pairs_on_a_table(tmp_path: Path) -> None:
    """a = 3x + shift(region) + 7 and b = -0.5x - shift(region): their ridge weights point in
    opposite directions (cosine near -1), and MTRL learns a negative correlation."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runs"))
    from test_fit_linear import _table

    config = {"data": {"name": "table", "path": str(_table(tmp_path / "t.csv")), "inputs": ["x", "region"],
                       "tasks": {"a": {"kind": "regression"}, "b": {"kind": "regression"}}},
              "training": {"steps": 20, "eval_every": 10, "progress": False}, "relatedness": {"every": 2},
              "logging": {"report": False}}
    relation = relate(parse_config(config), run_dir=tmp_path / "r", pairs=True, linear=True)
    found = {m.name: m for m in relation.matrices}
    assert found["parameter_cosine"].values[0, 1] < -0.7
    assert found["mtrl_correlation"].values[0, 1] < 0
    assert -1 <= found["representation_similarity"].values[0, 1] <= 1
    assert (tmp_path / "r" / "linear-mtrl" / "coef.csv").is_file()
    again = relate(parse_config(config), run_dir=tmp_path / "r", pairs=True, linear=True, resume=True)  # refits
    assert again.matrices[-2].name == "parameter_cosine"
    np.testing.assert_allclose(again.matrices[-2].values, found["parameter_cosine"].values)


def _rsa_by_hand(features: dict[str, np.ndarray], keep: np.ndarray) -> np.ndarray:
    """Written apart from the library with numpy only: 1 - Pearson between the kept samples, then
    Pearson between the ranks (no ties here) of the tasks' upper triangles."""
    upper = []
    for values in features.values():
        kept = values[keep] - values[keep].mean(axis=1, keepdims=True)
        unit = kept / np.linalg.norm(kept, axis=1, keepdims=True)
        upper.append((1 - unit @ unit.T)[np.triu_indices(int(keep.sum()), k=1)])
    ranks = [np.argsort(np.argsort(u)).astype(float) for u in upper]
    out = np.full((len(ranks), len(ranks)), np.nan)
    for i in range(len(ranks)):
        for j in range(i + 1, len(ranks)):
            out[i, j] = out[j, i] = np.corrcoef(ranks[i], ranks[j])[0, 1]
    return out


def test_rsa_leaves_out_inputs_a_model_encodes_as_constant_and_says_how_many() -> None:
    """Dead ReLUs: input 3 is all zeros for task a, input 7 constant for task c; both are left out
    of every task's dissimilarities, and the rest matches a computation on the eight others."""
    rng = np.random.default_rng(0)
    features = {t: np.maximum(rng.normal(size=(10, 4)), 0) + rng.uniform(0, 0.1, size=(10, 4)) for t in "abc"}
    features["a"][3] = 0.0
    features["c"][7] = 2.5
    with pytest.warns(RuntimeWarning, match="2 of the 10 probe inputs"):
        matrix = representation_similarity(features)
    keep = np.ones(10, dtype=bool)
    keep[[3, 7]] = False
    assert np.isfinite(matrix.values[~np.eye(3, dtype=bool)]).all()
    np.testing.assert_allclose(matrix.values, _rsa_by_hand(features, keep), rtol=1e-12, equal_nan=True)


def test_rsa_refuses_when_too_few_inputs_have_varying_features() -> None:
    features = {"a": np.zeros((5, 3)), "b": np.arange(15.0).reshape(5, 3) ** 2}
    features["a"][0] = [1.0, 2.0, 3.0]
    features["a"][1] = [3.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="3 of the 5 probe inputs"):
        representation_similarity(features)
    with pytest.raises(ValueError, match="same probe inputs"):
        representation_similarity({"a": np.eye(4), "b": np.eye(5)})
