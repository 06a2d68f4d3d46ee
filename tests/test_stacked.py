"""Tests for normcore.stacked: every stacked model computes what normcore.nn.build_mlp computes
with the same weights, in training and evaluation mode, and trains independently."""

import numpy as np
import pytest
import torch

from normcore import nn as ncnn
from normcore.stacked import STACKED_NORMS, StackedMLP, stacked_accuracy, train_stacked

torch.set_num_threads(1)


def _reference_models(norm, activation="relu", count=3):
    kwargs = dict(norm=norm, activation=activation, num_groups=4 if norm == "gn" else None)
    return [ncnn.build_mlp(10, (8, 8), 5, seed=s, **kwargs).double() for s in range(count)]


def _stacked_from(models, norm, activation="relu"):
    stacked = StackedMLP(len(models), 10, (8, 8), 5, norm=norm, activation=activation,
                         num_groups=4, dtype=torch.float64)
    for i, model in enumerate(models):
        model.train()
        if norm in ("bn", "brn"):       # give the running statistics non-default values
            with torch.no_grad():
                model(torch.randn(16, 10, dtype=torch.float64) * 2 + 1)
        stacked.load_model(i, model)
    return stacked


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("norm", [n for n in STACKED_NORMS if n != "bgn"])
def test_each_stacked_model_matches_build_mlp(norm, activation):
    models = _reference_models(norm, activation)
    stacked = _stacked_from(models, norm, activation)
    x = torch.randn(12, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 5, (12,), generator=torch.Generator().manual_seed(2))
    # training mode: outputs, gradients, updated running statistics
    out = stacked(x)
    torch.nn.functional.cross_entropy(out.reshape(-1, 5), y.repeat(3), reduction="sum").backward()
    for i, model in enumerate(models):
        ref = model(x)
        torch.testing.assert_close(out[i], ref, rtol=1e-10, atol=1e-12)
        torch.nn.functional.cross_entropy(ref, y, reduction="sum").backward()
        torch.testing.assert_close(stacked.weights[0].grad[i], model.fc1.weight.grad.T)
        torch.testing.assert_close(stacked.weights[2].grad[i], model.out.weight.grad.T)
        if norm in ("bn", "brn"):
            torch.testing.assert_close(stacked.running_mean1[i * 8:(i + 1) * 8],
                                       model.norm2.running_mean)
    # evaluation mode
    stacked.eval()
    with torch.no_grad():
        out = stacked(x)
        for i, model in enumerate(models):
            model.eval()
            torch.testing.assert_close(out[i], model(x), rtol=1e-10, atol=1e-12)


def test_models_train_independently_and_per_model_learning_rates_apply():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 10))
    y = rng.integers(0, 5, 64)
    lrs = [0.05, 1e6]                         # the second model diverges
    both = StackedMLP(2, 10, (8,), 5, norm="bn", init_scale=[1.0, 1.0], seed=3)
    alone = StackedMLP(1, 10, (8,), 5, norm="bn", seed=3)
    with torch.no_grad():
        for p_alone, p_both in zip(alone.parameters(), both.parameters(), strict=True):
            p_alone.copy_(p_both[:1])
    losses = train_stacked(both, X, y, steps=20, batch_size=16, lr=lrs, seed=0)
    single = train_stacked(alone, X, y, steps=20, batch_size=16, lr=lrs[0], seed=0)
    np.testing.assert_allclose(losses[:, 0], single[:, 0], rtol=1e-5)
    assert losses[-1, 0] < losses[0, 0]
    assert np.isinf(losses[-1, 1])
    assert stacked_accuracy(both, X, y).shape == (2,)


def test_init_scale_scales_he_weights():
    model = StackedMLP(3, 400, (400,), 10, init_scale=[0.1, 1.0, 3.0], seed=0,
                       dtype=torch.float64)
    std = model.weights[0].detach().std(dim=(1, 2)).numpy()
    np.testing.assert_allclose(std, np.array([0.1, 1.0, 3.0]) * np.sqrt(2 / 400), rtol=0.01)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(norm="xx"), "unknown norm 'xx'"),
    (dict(activation="elu"), "unknown activation 'elu'"),
    (dict(norm="gn", num_groups=3), "num_groups=3 does not divide"),
    (dict(init_scale=[1.0, 2.0]), "init_scale must be a scalar or have length 3"),
    (dict(init_scale=-1.0), "init_scale must be positive"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StackedMLP(3, 4, (8,), 2, **kwargs)


def test_train_stacked_bad_arguments_raise():
    model = StackedMLP(2, 4, (8,), 2)
    X, y = np.zeros((10, 4)), np.zeros(10, dtype=int)
    with pytest.raises(ValueError, match="lr must be a scalar or have length 2"):
        train_stacked(model, X, y, steps=1, batch_size=4, lr=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="batch_size=20 exceeds the 10 examples"):
        train_stacked(model, X, y, steps=1, batch_size=20, lr=0.1)
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adam'"):
        train_stacked(model, X, y, steps=1, batch_size=4, lr=0.1, optimizer="lbfgs")


@pytest.mark.parametrize("norm", ["none", "bn", "gn", "ln"])
def test_each_stacked_cnn_matches_build_cnn(norm):
    from normcore.stacked import StackedCNN

    kwargs = dict(norm=norm, num_groups=4 if norm == "gn" else None)
    models = [ncnn.build_cnn(1, 10, channels=(8, 16), seed=s, **kwargs).double()
              for s in range(3)]
    stacked = StackedCNN(3, (8, 16), 10, norm=norm, num_groups=4, dtype=torch.float64)
    for i, model in enumerate(models):
        if norm == "bn":
            with torch.no_grad():
                model(torch.rand(16, 1, 8, 8, dtype=torch.float64) * 2)
        stacked.load_model(i, model)
    x = torch.rand(12, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (12,), generator=torch.Generator().manual_seed(2))
    out = stacked(x)
    torch.nn.functional.cross_entropy(out.reshape(-1, 10), y.repeat(3), reduction="sum").backward()
    for i, model in enumerate(models):
        ref = model(x)
        torch.testing.assert_close(out[i], ref, rtol=1e-10, atol=1e-12)
        torch.nn.functional.cross_entropy(ref, y, reduction="sum").backward()
        torch.testing.assert_close(stacked.conv2.grad[i * 16:(i + 1) * 16],
                                   model.conv2.weight.grad)
    stacked.eval()
    with torch.no_grad():
        out = stacked(x)
        for i, model in enumerate(models):
            model.eval()
            torch.testing.assert_close(out[i], model(x), rtol=1e-10, atol=1e-12)


def test_stacked_cnn_trains_with_per_model_learning_rates():
    from normcore.stacked import StackedCNN

    rng = np.random.default_rng(0)
    X = rng.random((64, 1, 8, 8))
    y = rng.integers(0, 10, 64)
    model = StackedCNN(2, (4, 8), 10, norm="gn", num_groups=2, seed=0)
    losses = train_stacked(model, X, y, steps=30, batch_size=16, lr=[0.05, 1e6], seed=0)
    assert losses[-5:, 0].mean() < losses[:5, 0].mean()
    assert np.isinf(losses[-1, 1])
    assert stacked_accuracy(model, X, y).shape == (2,)


def test_stacked_batch_group_norm_matches_the_numpy_reference():
    from normcore.normalization import batch_group_norm_forward

    model = StackedMLP(2, 6, (8,), 3, norm="bgn", num_groups=2, momentum=1.0, seed=0,
                       dtype=torch.float64)
    with torch.no_grad():
        model.gammas[0].uniform_(0.5, 1.5)
        model.betas[0].normal_()
    x = torch.randn(2, 10, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pre = torch.baddbmm(model.biases[0], x, model.weights[0]).detach()     # (2, 10, 8)
    out = model(x)
    for m in range(2):
        normalized, _ = batch_group_norm_forward(
            pre[m].numpy(), 2, model.gammas[0][m, 0].detach().numpy(),
            model.betas[0][m, 0].detach().numpy())
        logits = np.maximum(normalized, 0) @ model.weights[1][m].detach().numpy() \
            + model.biases[1][m, 0].detach().numpy()
        np.testing.assert_allclose(out[m].detach().numpy(), logits, rtol=1e-10, atol=1e-12)
        # momentum 1: the running mean of group g is the mean of its 10 x 4 values
        group_means = pre[m].reshape(10, 2, 4).mean(dim=(0, 2))
        torch.testing.assert_close(model.running_mean0[2 * m:2 * m + 2], group_means)
