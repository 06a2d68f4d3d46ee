"""Tests for normcore.nn: CWN and batch-whitening modules, model builders, the training loop.

The modules are compared with the NumPy references in normcore.weightnorm and
normcore.whitening, and with closed-form properties (zero-mean rows, identity covariance).
"""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from normcore import data, whitening
from normcore import nn as ncnn
from normcore.weightnorm import centered_weight_norm_backward, centered_weight_norm_forward

MLP_NORMS = [n for n in ncnn.NORMS if n != "in"]
BATCH_DEPENDENT = {"bn", "brn", "bw-pca", "bw-zca", "bw-cd"}  # batch statistics in train mode
METHODS = ["pca", "zca", "cd"]


@pytest.fixture(scope="module")
def digits():
    return data.load_digits_split()


@pytest.fixture(scope="module")
def digits_images():
    return data.load_digits_split(flat=False)


# --------------------------------------------------------------------------- CWN


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 3, 3), (1, 2)])
def test_centered_weight_norm_rows_and_reference(shape, rng):
    v = rng.standard_normal(shape)
    g = rng.standard_normal(shape[0])
    w = ncnn.centered_weight_norm(torch.from_numpy(v), torch.from_numpy(g)).numpy()
    rows = w.reshape(shape[0], -1)
    np.testing.assert_allclose(rows.mean(axis=1), 0.0, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), np.abs(g), rtol=1e-12)
    ref, _ = centered_weight_norm_forward(v, g)
    np.testing.assert_allclose(w, ref, rtol=1e-12, atol=1e-14)
    # independent float64 formula
    vr = v.reshape(shape[0], -1)
    centered = vr - vr.mean(axis=1, keepdims=True)
    manual = g[:, None] * centered / np.sqrt((centered**2).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(rows, manual, rtol=1e-12, atol=1e-14)


def test_cwn_linear_forward_and_grads_match_reference(rng):
    layer = ncnn.CenteredWeightNormLinear(6, 4).double()
    with torch.no_grad():
        layer.g.copy_(torch.tensor([1.5, -0.5, 2.0, 0.1], dtype=torch.float64))
    x = torch.from_numpy(rng.standard_normal((3, 6)))
    out = layer(x)
    w_ref, cache = centered_weight_norm_forward(layer.v.detach().numpy(),
                                                layer.g.detach().numpy())
    expected = x.numpy() @ w_ref.T + layer.bias.detach().numpy()
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12)
    dout = rng.standard_normal(out.shape)
    out.backward(torch.from_numpy(dout))
    dv, dg = centered_weight_norm_backward(dout.T @ x.numpy(), cache)
    np.testing.assert_allclose(layer.v.grad.numpy(), dv, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.g.grad.numpy(), dg, rtol=1e-10, atol=1e-12)


def test_cwn_conv_matches_conv2d_with_reference_weight(rng):
    layer = ncnn.CenteredWeightNormConv2d(3, 5, 3, padding=1, stride=2).double()
    x = torch.from_numpy(rng.standard_normal((2, 3, 8, 8)))
    w_ref, _ = centered_weight_norm_forward(layer.v.detach().numpy(), layer.g.detach().numpy())
    expected = torch.nn.functional.conv2d(x, torch.from_numpy(w_ref), layer.bias, stride=2,
                                          padding=1)
    out = layer(x)
    assert out.shape == (2, 5, 4, 4)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_cwn_initial_weight_is_centered_v():
    layer = ncnn.CenteredWeightNormLinear(10, 3)
    v = layer.v.detach()
    torch.testing.assert_close(layer.weight.detach(), v - v.mean(dim=1, keepdim=True))


# --------------------------------------------------------------------------- whitening


def _cov(out):
    centered = out - out.mean(axis=0)
    return centered.T @ centered / len(out)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("num_groups", [1, 2])
def test_batch_whitening_whitens_in_train_mode(method, num_groups, rng):
    d, c = 8, 8 // num_groups
    mixing = rng.standard_normal((d, d))
    x = torch.from_numpy(rng.standard_normal((256, d)) @ mixing + 3.0)
    bw = ncnn.BatchWhitening(d, method=method, eps=1e-9, num_groups=num_groups).double()
    out = bw(x).detach().numpy()
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-10)
    cov = _cov(out)
    for k in range(num_groups):
        block = cov[k * c:(k + 1) * c, k * c:(k + 1) * c]
        np.testing.assert_allclose(block, np.eye(c), atol=1e-6)
    if num_groups == 2:  # groups are whitened separately, so cross-covariance remains
        assert np.abs(cov[:c, c:]).max() > 0.05


@pytest.mark.parametrize("method", METHODS)
def test_batch_whitening_images_whiten_channels_over_positions(method, rng):
    x = rng.standard_normal((4, 3, 5, 6))
    x[:, 1] += 0.8 * x[:, 0]
    bw = ncnn.BatchWhitening(3, method=method, eps=1e-9).double()
    out = bw(torch.from_numpy(x)).detach().numpy()
    assert out.shape == x.shape
    rows = out.transpose(0, 2, 3, 1).reshape(-1, 3)
    np.testing.assert_allclose(_cov(rows), np.eye(3), atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("num_groups", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batch_whitening_matches_reference(method, num_groups, dtype, rng):
    N, d = 40, 6
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    tol = {"rtol": 1e-9, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 1e-3, "atol": 1e-4}
    bw = ncnn.BatchWhitening(d, method=method, num_groups=num_groups, affine=False).to(dtype)
    running_mean = np.zeros(d, dtype=np_dtype)
    running_cov = np.tile(np.eye(d // num_groups, dtype=np_dtype), (num_groups, 1, 1))
    for step in range(3):
        x = (rng.standard_normal((N, d)) @ rng.standard_normal((d, d)) + step).astype(np_dtype)
        out = bw(torch.from_numpy(x)).detach().numpy()
        if num_groups == 1:
            ref, _ = whitening.batch_whitening_forward(
                x, method, running_mean=running_mean, running_cov=running_cov[0])
        else:
            ref, _ = whitening.group_whitening_forward(
                x, num_groups, method, running_mean=running_mean, running_cov=running_cov)
        np.testing.assert_allclose(out, ref, **tol)
    np.testing.assert_allclose(bw.running_mean.numpy(), running_mean, **tol)
    np.testing.assert_allclose(bw.running_cov.numpy(), running_cov, **tol)
    bw.eval()
    x = rng.standard_normal((5, d)).astype(np_dtype)
    ref, _ = whitening.group_whitening_forward(x, num_groups, method, running_mean=running_mean,
                                               running_cov=running_cov, training=False)
    np.testing.assert_allclose(bw(torch.from_numpy(x)).detach().numpy(), ref, **tol)


def test_batch_whitening_eval_uses_running_stats(rng):
    bw = ncnn.BatchWhitening(4, method="zca").double()
    x = torch.from_numpy(rng.standard_normal((32, 4)) * 2 + 1)
    for _ in range(120):
        bw(x)
    torch.testing.assert_close(bw.running_mean, x.mean(0), rtol=1e-3, atol=1e-3)
    bw.eval()
    single = bw(x[:1])
    torch.testing.assert_close(single, bw(x)[:1])
    # with running stats equal to the batch's, eval whitening is (nearly) the train whitening
    bw.train()
    train_out = bw(x)
    bw.eval()
    torch.testing.assert_close(bw(x), train_out, rtol=0.05, atol=0.05)


def test_batch_whitening_gradient_flows(rng):
    bw = ncnn.BatchWhitening(4, method="cd").double()
    x = torch.from_numpy(rng.standard_normal((16, 4))).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: bw(t), (x,))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "svd"}, "method must be"),
        ({"num_groups": 3}, "does not divide"),
        ({"num_groups": 0}, "does not divide"),
        ({"eps": 0.0}, "eps > 0"),
        ({"momentum": 1.5}, "momentum"),
    ],
)
def test_batch_whitening_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ncnn.BatchWhitening(4, **kwargs)


def test_batch_whitening_bad_input_shape():
    bw = ncnn.BatchWhitening(4)
    with pytest.raises(ValueError, match=r"expected input \(N, 4\)"):
        bw(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="more than 1 sample"):
        bw(torch.zeros(1, 4))


# --------------------------------------------------------------------------- builders


def _build(kind, norm, **kwargs):
    if kind == "mlp":
        return ncnn.build_mlp(64, (32, 32), 10, norm=norm, **kwargs)
    return ncnn.build_cnn(1, 10, channels=(8, 16), norm=norm, **kwargs)


def _input(kind, n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 64) if kind == "mlp" else (n, 1, 8, 8), generator=g)


@pytest.mark.parametrize(
    "kind, norm", [("mlp", n) for n in MLP_NORMS] + [("cnn", n) for n in ncnn.NORMS]
)
def test_builders_forward_and_train_vs_eval(kind, norm):
    model = _build(kind, norm)
    x, other = _input(kind), _input(kind, seed=1)
    model.train()
    out = model(x)
    assert out.shape == (20, 10) and torch.isfinite(out).all()
    # in train mode a batch-dependent norm makes sample 0 depend on the rest of the batch
    mixed = model(torch.cat([x[:1], other[1:]]))
    batch_dependent = not torch.allclose(out[:1], mixed[:1], atol=1e-6)
    assert batch_dependent == (norm in BATCH_DEPENDENT)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:1], model(x[:1]))
        if norm not in BATCH_DEPENDENT:
            torch.testing.assert_close(model(x), out.detach())


def test_batchnorm_eval_uses_running_stats():
    model = _build("mlp", "bn")
    bn = model.norm1
    x = _input("mlp", n=64)
    model.train()
    model(x)
    assert not torch.allclose(bn.running_mean, torch.zeros(32))
    assert bn.num_batches_tracked.item() == 1
    model.eval()
    h = model.fc1(x)
    expected = (h - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(model.norm1(h), expected * bn.weight + bn.bias)
    assert bn.num_batches_tracked.item() == 1


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_placement_changes_module_order(kind):
    before = list(dict(_build(kind, "bn", placement="before").named_children()))
    after = list(dict(_build(kind, "bn", placement="after").named_children()))
    first = "fc1" if kind == "mlp" else "conv1"
    assert before[:3] == [first, "norm1", "act1"]
    assert after[:3] == [first, "act1", "norm1"]
    assert sorted(before) == sorted(after)
    assert list(dict(_build(kind, "none").named_children()))[:2] == [first, "act1"]


@pytest.mark.parametrize(
    "norm, kind, cls",
    [
        ("bn", "mlp", nn.BatchNorm1d), ("bn", "cnn", nn.BatchNorm2d), ("ln", "mlp", nn.LayerNorm),
        ("ln", "cnn", nn.GroupNorm), ("in", "cnn", nn.InstanceNorm2d), ("gn", "mlp", nn.GroupNorm),
        ("bw-zca", "cnn", ncnn.BatchWhitening),
    ],
)
def test_norm_module_types(norm, kind, cls):
    assert isinstance(_build(kind, norm).norm1, cls)


def test_default_and_explicit_groups():
    gn = ncnn.build_mlp(64, (64,), 10, norm="gn").norm1
    assert gn.num_groups == 16 and 64 % gn.num_groups == 0
    bw = ncnn.build_mlp(64, (64,), 10, norm="bw-cd").norm1
    assert bw.num_groups == 4 and bw.method == "cd"
    assert ncnn.build_mlp(64, (12,), 10, norm="bw-pca").norm1.num_groups == 1
    assert ncnn.build_mlp(64, (64,), 10, norm="gn", num_groups=2).norm1.num_groups == 2
    with pytest.raises(ValueError, match="num_groups=5 does not divide width 64"):
        ncnn.build_mlp(64, (64,), 10, norm="gn", num_groups=5)


def test_weight_norm_layers():
    wn = ncnn.build_mlp(64, (32,), 10, norm="wn")
    cwn = ncnn.build_mlp(64, (32,), 10, norm="cwn")
    plain = ncnn.build_mlp(64, (32,), 10, norm="none")
    assert nn.utils.parametrize.is_parametrized(wn.fc1, "weight")
    assert isinstance(cwn.fc1, ncnn.CenteredWeightNormLinear)
    # the named initialization sets the effective weight: same seed, same weights
    torch.testing.assert_close(wn.fc1.weight, plain.fc1.weight)
    w = plain.fc1.weight
    torch.testing.assert_close(cwn.fc1.weight, w - w.mean(dim=1, keepdim=True))
    torch.testing.assert_close(cwn.out.weight, plain.out.weight)
    assert isinstance(ncnn.build_cnn(norm="cwn").conv1, ncnn.CenteredWeightNormConv2d)


@pytest.mark.parametrize(
    "init, activation, std",
    [
        ("kaiming", "relu", math.sqrt(2 / 400)),
        ("kaiming", "tanh", 5 / 3 / math.sqrt(400)),
        ("xavier", "relu", math.sqrt(2 / 800)),
    ],
)
def test_named_initialization_scales(init, activation, std):
    model = ncnn.build_mlp(400, (400,), 10, norm="none", init=init, activation=activation)
    assert model.fc1.weight.std().item() == pytest.approx(std, rel=0.02)
    assert torch.all(model.fc1.bias == 0)


@pytest.mark.parametrize("norm", ["none", "bn"])
def test_leaky_relu_kaiming_equals_torch_kaiming_normal(norm):
    # build_mlp seeds torch, creates each Linear (which draws its default init) and then
    # re-initializes the weight with kaiming_normal_(a=negative slope of nn.LeakyReLU).
    slope = nn.LeakyReLU().negative_slope
    model = ncnn.build_mlp(30, (20, 15), 10, norm=norm, activation="leaky_relu",
                           init="kaiming", seed=7)
    assert model.act1.negative_slope == slope
    torch.manual_seed(7)
    expected = []
    for fan_in, fan_out, nonlinearity in ((30, 20, "leaky_relu"), (20, 15, "leaky_relu"),
                                          (15, 10, "linear")):
        layer = nn.Linear(fan_in, fan_out)
        nn.init.kaiming_normal_(layer.weight, a=slope, nonlinearity=nonlinearity)
        expected.append(layer.weight.detach())
    for name, weight in zip(("fc1", "fc2", "out"), expected, strict=True):
        assert torch.equal(getattr(model, name).weight.detach(), weight), name
        assert torch.all(getattr(model, name).bias == 0)
    # the gain is sqrt(2 / (1 + slope^2)), not ReLU's sqrt(2)
    std = math.sqrt(2 / (1 + slope**2)) / math.sqrt(30)
    assert model.fc1.weight.std().item() == pytest.approx(std, rel=0.1)


def test_orthogonal_initialization():
    model = ncnn.build_mlp(50, (20,), 10, norm="none", init="orthogonal", activation="relu")
    w = model.fc1.weight.detach().double()
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(20, dtype=torch.float64), rtol=0,
                               atol=1e-5)


def test_builder_seed_is_deterministic_and_leaves_global_rng():
    state = torch.get_rng_state()
    a, b = _build("mlp", "bn", seed=1), _build("mlp", "bn", seed=1)
    c = _build("mlp", "bn", seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


def test_dropout_and_activation():
    model = ncnn.build_mlp(8, (16, 16), 2, norm="ln", activation="tanh", dropout=0.3)
    assert isinstance(model.drop1, nn.Dropout) and model.drop1.p == 0.3
    assert isinstance(model.act2, nn.Tanh)


def test_mlp_rejects_instance_norm():
    with pytest.raises(ValueError, match="norm='in'.*'ln'"):
        ncnn.build_mlp(64, (32,), 10, norm="in")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"norm": "batchnorm"}, "unknown norm 'batchnorm'; valid: none, bn, ln"),
        ({"placement": "middle"}, "unknown placement"),
        ({"activation": "swish"}, "unknown activation 'swish'; valid: relu"),
        ({"init": "he"}, "unknown init 'he'; valid: kaiming, xavier, orthogonal, default"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_builders_bad_names(kind, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _build(kind, **{"norm": "bn", **kwargs})


# --------------------------------------------------------------------------- training


def test_make_loader(digits):
    loader = ncnn.make_loader(digits.X_train, digits.y_train, 64)
    xb, yb = next(iter(loader))
    assert xb.shape == (64, 64) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert len(loader) == math.ceil(len(digits.y_train) / 64)
    fixed = ncnn.make_loader(digits.X_val, digits.y_val, 100, shuffle=False)
    np.testing.assert_array_equal(next(iter(fixed))[1].numpy(), digits.y_val[:100])
    reg = ncnn.make_loader(np.zeros((5, 2)), np.zeros(5), 2)
    assert next(iter(reg))[1].dtype == torch.float32
    with pytest.raises(ValueError, match="same length"):
        ncnn.make_loader(np.zeros((5, 2)), np.zeros(4), 2)


def _first_last(history, k=5):
    return np.mean(history.loss[:k]), np.mean(history.loss[-k:])


@pytest.mark.parametrize("norm", MLP_NORMS)
def test_one_epoch_lowers_loss_mlp(norm, digits):
    loader = ncnn.make_loader(digits.X_train, digits.y_train, 64)
    model = ncnn.build_mlp(64, (32, 32), 10, norm=norm)
    history = ncnn.train(model, loader, epochs=1, optimizer="sgd", lr=0.1, momentum=0.9,
                         progress=False)
    assert len(history.loss) == history.steps_per_epoch == len(loader) == 20
    first, last = _first_last(history)
    assert np.all(np.isfinite(history.loss))
    if norm == "bw-pca":
        # full PCA whitening changes its axes from batch to batch (the lecture's stochastic
        # normalization disturbance, largest for PCA), so it trains far more slowly
        assert last < first - 0.03
    else:
        assert last < 0.75 * first


@pytest.mark.parametrize("norm", ncnn.NORMS)
def test_one_epoch_lowers_loss_cnn(norm, digits_images):
    loader = ncnn.make_loader(digits_images.X_train, digits_images.y_train, 64)
    model = ncnn.build_cnn(1, 10, channels=(8, 16), norm=norm)
    history = ncnn.train(model, loader, epochs=1, optimizer="sgd", lr=0.05, momentum=0.9,
                         progress=False)
    first, last = _first_last(history)
    assert last < first - 0.1


def test_validation_history_and_evaluate(digits):
    loader = ncnn.make_loader(digits.X_train, digits.y_train, 64)
    val = ncnn.make_loader(digits.X_val, digits.y_val, 128, shuffle=False)
    model = ncnn.build_mlp(64, (32,), 10, norm="bn")
    before = ncnn.evaluate(model, val)
    history = ncnn.train(model, loader, epochs=2, optimizer="adam", lr=1e-2, val_loader=val,
                         progress=False)
    assert len(history.val_loss) == len(history.val_accuracy) == 3
    assert len(history.epoch_loss) == 2 and len(history.loss) == 40
    assert history.val_loss[0] == pytest.approx(before[0])
    assert history.val_loss[-1] < 0.5 * history.val_loss[0]
    assert history.val_accuracy[-1] > 0.85
    # evaluate against a manual computation
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(digits.X_val))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(digits.y_val)).item()
        acc = (logits.argmax(1).numpy() == digits.y_val).mean()
    model.train()
    got = ncnn.evaluate(model, val)
    assert got[0] == pytest.approx(loss, rel=1e-5) and got[1] == pytest.approx(acc)
    assert model.training
    np.testing.assert_array_equal(history.steps, np.arange(40))


def test_training_is_deterministic(digits):
    loader = ncnn.make_loader(digits.X_train[:320], digits.y_train[:320], 32)
    state = torch.get_rng_state()

    def run(seed):
        model = ncnn.build_mlp(64, (32,), 10, norm="bn", dropout=0.2)
        return ncnn.train(model, loader, epochs=2, lr=0.05, seed=seed, track=True,
                          progress=False)

    a, b, c = run(0), run(0), run(1)
    # same loader reused: its generator is rewound (assert_equal treats NaN == NaN)
    np.testing.assert_equal(dataclasses.asdict(a), dataclasses.asdict(b))
    assert len(a.update_ratio) == 6 and len(a.loss) == 20
    assert a.loss != c.loss  # the seed drives dropout
    assert torch.equal(torch.get_rng_state(), state)
    fresh = ncnn.make_loader(digits.X_train[:320], digits.y_train[:320], 32, seed=5)
    d = ncnn.train(ncnn.build_mlp(64, (32,), 10, norm="bn", dropout=0.2), fresh, epochs=2,
                   lr=0.05, progress=False)
    assert d.loss != a.loss  # a different loader seed: different batches


def test_tracking(digits):
    loader = ncnn.make_loader(digits.X_train, digits.y_train, 64)
    model = ncnn.build_mlp(64, (32, 32), 10, norm="bn")
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr = 0.01
    history = ncnn.train(model, loader, epochs=1, lr=lr, track=True, progress=False)
    steps = len(history.loss)
    assert set(history.activation_mean) == {"norm1", "act1", "norm2", "act2"}
    assert all(len(v) == steps for v in history.activation_std.values())
    assert set(history.grad_norm) == set(history.update_ratio) == set(w0)
    # BN output at the first step: batch mean 0, std 1 (weight 1, bias 0)
    assert history.activation_mean["norm1"][0] == pytest.approx(0.0, abs=1e-5)
    assert history.activation_std["norm1"][0] == pytest.approx(1.0, rel=0.02)
    assert all(m >= 0 for m in history.activation_mean["act1"])
    # plain SGD: ||lr * grad|| / ||w|| exactly, at every step for the first one
    for name in ("fc1.weight", "out.weight"):
        expected = lr * history.grad_norm[name][0] / w0[name].norm().item()
        assert history.update_ratio[name][0] == pytest.approx(expected, rel=1e-4)
        median = np.median(history.update_ratio[name])
        assert 1e-5 < median < 1e-1  # around the lectures' 1e-3 for lr = 0.01
    # biases start at zero: the ratio is undefined at step 0
    assert math.isnan(history.update_ratio["fc1.bias"][0])


def test_tracking_off_records_nothing(digits):
    loader = ncnn.make_loader(digits.X_train[:128], digits.y_train[:128], 64)
    history = ncnn.train(ncnn.build_mlp(64, (16,), 10), loader, epochs=1, lr=0.1,
                         progress=False)
    assert history.grad_norm == {} and history.activation_mean == {}


def test_divergence_stops_training(digits):
    loader = ncnn.make_loader(digits.X_train, digits.y_train, 64)
    model = ncnn.build_mlp(64, (32,), 10, norm="none")
    history = ncnn.train(model, loader, epochs=3, lr=1e12, progress=False)
    assert history.diverged and len(history.loss) < 3 * len(loader)
    assert np.all(np.isfinite(history.loss))  # the non-finite step is not recorded


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'; valid: sgd"),
        ({"optimizer": "adam", "momentum": 0.9}, "momentum applies to"),
        ({"lr": 0.0}, "lr > 0"),
        ({"epochs": -1}, "epochs >= 0"),
    ],
)
def test_train_bad_arguments(kwargs, match, digits):
    loader = ncnn.make_loader(digits.X_train[:64], digits.y_train[:64], 32)
    with pytest.raises(ValueError, match=match):
        ncnn.train(ncnn.build_mlp(64, (8,), 10), loader, **{"epochs": 1, "lr": 0.1, **kwargs},
                   progress=False)


@pytest.mark.parametrize("optimizer", ncnn.OPTIMIZERS)
def test_every_optimizer_runs(optimizer, digits):
    loader = ncnn.make_loader(digits.X_train[:256], digits.y_train[:256], 64)
    momentum = 0.9 if optimizer in ("sgd", "nesterov", "rmsprop") else 0.0
    history = ncnn.train(ncnn.build_mlp(64, (16,), 10), loader, epochs=2, lr=1e-2,
                         optimizer=optimizer, momentum=momentum, weight_decay=1e-4,
                         progress=False)
    assert np.mean(history.loss[-2:]) < np.mean(history.loss[:2])
