"""The digits workload without scikit-learn on its start-up path: same data, same metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ludus_trainer.workloads.digits import classification_metrics, load_digits, stratified_split


def test_the_data_is_scikit_learns() -> None:
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    features, labels = load_digits()
    expected_x, expected_y = sklearn_datasets.load_digits(return_X_y=True)
    assert np.array_equal(features, expected_x) and np.array_equal(labels, expected_y)


def test_the_split_is_stratified_disjoint_and_reproducible() -> None:
    _, labels = load_digits()
    train, test = stratified_split(labels, 0.2, seed=0)
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    assert abs(len(test) - 0.2 * len(labels)) <= 10
    for cls in range(10):
        share = np.mean(labels[test] == cls) / np.mean(labels == cls)
        assert 0.9 < share < 1.1
    again = stratified_split(labels, 0.2, seed=0)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not np.array_equal(test, stratified_split(labels, 0.2, seed=1)[1])


@pytest.mark.parametrize("seed", range(5))
def test_the_metrics_equal_scikit_learns(seed: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, 300)
    predictions = np.where(rng.random(300) < 0.7, labels, rng.integers(0, 8, 300))  # classes 8, 9 under-predicted
    if seed == 0:
        predictions[predictions == 9] = 0  # a class never predicted
    ours = classification_metrics(torch.tensor(labels), torch.tensor(predictions), 10)
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(labels, predictions, average="macro",
                                                                        zero_division=0)
    assert ours["accuracy"] == pytest.approx(metrics.accuracy_score(labels, predictions))
    assert ours["precision"] == pytest.approx(precision)
    assert ours["recall"] == pytest.approx(recall)
    assert ours["f1"] == pytest.approx(f1)
