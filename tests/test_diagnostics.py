"""normcore.diagnostics on cases whose answer is known by hand."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from normcore import nn as cnn
from normcore.diagnostics import (
    UPDATE_RATIO_RULE_OF_THUMB,
    LayerRecorder,
    expected_initial_loss,
    parameter_ratios,
    saturation_fraction,
)

# ----------------------------------------------------------------------------- initial loss


@pytest.mark.parametrize("C", [2, 10, 1000])
def test_expected_initial_loss_is_ln_C(C):
    assert expected_initial_loss(C) == pytest.approx(-math.log(1 / C), rel=1e-15)


def test_zero_output_layer_has_exactly_the_expected_initial_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4))
    nn.init.zeros_(model[2].weight)
    nn.init.zeros_(model[2].bias)
    x, y = torch.randn(32, 5), torch.randint(0, 4, (32,))
    loss = nn.functional.cross_entropy(model(x), y).item()
    assert loss == pytest.approx(math.log(4), rel=1e-6)


@pytest.mark.parametrize("C, err", [(1, ValueError), (0, ValueError), (2.0, TypeError),
                                    (True, TypeError)])
def test_expected_initial_loss_bad_input(C, err):
    with pytest.raises(err, match="num_classes"):
        expected_initial_loss(C)


# ----------------------------------------------------------------------------- saturation


def test_saturation_fraction_counts_per_unit():
    h = np.array([[0.995, 0.5, -1.0],
                  [-0.999, 0.98, 0.0],
                  [0.2, -0.991, 0.0],
                  [0.999, 0.0, 0.0]])
    np.testing.assert_array_equal(saturation_fraction(h), [0.75, 0.25, 0.25])
    np.testing.assert_array_equal(saturation_fraction(h, threshold=0.9), [0.75, 0.5, 0.25])


def test_saturation_fraction_keeps_channel_and_pixel_axes_and_dtype():
    h = np.zeros((10, 3, 2, 2), dtype=np.float32)
    h[:4, 1, 0, 1] = 1.0
    out = saturation_fraction(h)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    assert out[1, 0, 1] == pytest.approx(0.4)
    assert out.sum() == pytest.approx(0.4)


def test_saturation_of_tanh_with_huge_inputs_matches_the_gaussian_tail():
    # z ~ N(0, s^2): |tanh z| > 0.99  <=>  |z| > atanh(0.99); P = erfc(atanh(0.99) / (s sqrt 2))
    s = 3.0
    z = np.random.default_rng(0).normal(0, s, (200_000, 1))
    expected = math.erfc(math.atanh(0.99) / (s * math.sqrt(2)))
    assert saturation_fraction(np.tanh(z))[0] == pytest.approx(expected, abs=5e-3)


@pytest.mark.parametrize(
    "h, kw, err, msg",
    [
        ([[0.5]], {}, TypeError, "numpy.ndarray"),
        (np.zeros(3), {}, ValueError, "h"),
        (np.zeros((2, 2), dtype=np.int64), {}, TypeError, "float32 or float64"),
        (np.zeros((0, 2)), {}, ValueError, "at least one example"),
        (np.full((2, 2), np.nan), {}, ValueError, "finite|NaN"),
        (np.zeros((2, 2)), {"threshold": 0.0}, ValueError, "threshold"),
    ],
)
def test_saturation_fraction_bad_input(h, kw, err, msg):
    with pytest.raises(err, match=msg):
        saturation_fraction(h, **kw)


def test_saturation_fraction_leaves_input_alone():
    h = np.array([[0.999, 0.1]])
    copy = h.copy()
    saturation_fraction(h)
    np.testing.assert_array_equal(h, copy)


# ----------------------------------------------------------------------------- ratios


def _tracked_run(optimizer="sgd", lr=0.05, momentum=0.0, steps_per_epoch=4):
    gen = np.random.default_rng(0)
    X = gen.standard_normal((16 * steps_per_epoch, 6)).astype(np.float32)
    y = gen.integers(0, 3, len(X))
    model = cnn.build_mlp(6, (8,), 3, norm="none", activation="tanh", seed=0)
    loader = cnn.make_loader(X, y, 16, seed=0)
    history = cnn.train(model, loader, epochs=2, lr=lr, optimizer=optimizer,
                        momentum=momentum, track=True, progress=False, device="cpu")
    return history


def test_sgd_update_ratio_is_lr_times_gradient_ratio():
    lr = 0.05
    history = _tracked_run(lr=lr)
    upd = parameter_ratios(history, kind="update")
    grad = parameter_ratios(history, kind="gradient")
    assert set(upd) == {"fc1.weight", "out.weight"}
    for name in upd:
        assert len(upd[name]) == 8
        np.testing.assert_allclose(upd[name], lr * grad[name], rtol=1e-4)


def test_momentum_breaks_the_proportionality():
    history = _tracked_run(momentum=0.9)
    upd = parameter_ratios(history, kind="update")["fc1.weight"]
    grad = parameter_ratios(history, kind="gradient")["fc1.weight"]
    # the first step has no velocity yet; later steps carry the old gradients
    assert upd[0] == pytest.approx(0.05 * grad[0], rel=1e-4)
    assert not np.allclose(upd[3:], 0.05 * grad[3:], rtol=1e-2)


def test_gradient_ratio_equals_recorded_norms_and_biases_can_be_kept():
    history = _tracked_run()
    grad = parameter_ratios(history, kind="gradient", weights_only=False)
    assert "fc1.bias" in grad
    # biases start at zero: the ratio is undefined at step 0
    assert np.isnan(grad["fc1.bias"][0])
    name = "out.weight"
    expected = np.array(history.grad_norm[name]) / np.array(history.weight_norm[name])
    np.testing.assert_allclose(grad[name], expected)
    assert UPDATE_RATIO_RULE_OF_THUMB == 1e-3


def test_weight_norm_is_recorded_before_the_step():
    gen = np.random.default_rng(1)
    X = gen.standard_normal((8, 3)).astype(np.float32)
    y = gen.integers(0, 2, 8)
    model = cnn.build_mlp(3, (4,), 2, norm="none", seed=0)
    initial = model.fc1.weight.detach().norm().item()
    history = cnn.train(model, cnn.make_loader(X, y, 8), epochs=1, lr=0.1, track=True,
                        progress=False, device="cpu")
    assert history.weight_norm["fc1.weight"][0] == pytest.approx(initial, rel=1e-6)


def test_parameter_ratios_bad_input():
    with pytest.raises(TypeError, match="History"):
        parameter_ratios({"update_ratio": {}})
    with pytest.raises(ValueError, match="track=True"):
        parameter_ratios(cnn.History())
    with pytest.raises(ValueError, match="kind"):
        parameter_ratios(cnn.History(), kind="weights")


# ----------------------------------------------------------------------------- recorder


def _tiny_model():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(12.0).reshape(4, 3) / 20 - 0.3)
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 3.0]]))
        model[2].bias.zero_()
    return model


def test_recorder_keeps_activation_and_its_gradient_at_the_chosen_step():
    model = _tiny_model()
    x = torch.linspace(-1, 1, 15).reshape(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with LayerRecorder(model, steps=[1], module_types=(nn.Tanh,)) as rec:
        for _ in range(3):
            # weights of this step, to predict what the recorder must hold
            w1, b1 = model[0].weight.detach().clone(), model[0].bias.detach().clone()
            w2 = model[2].weight.detach().clone()
            if rec.steps_seen == 1:
                expected_h = torch.tanh(x @ w1.T + b1)
                # loss = sum of outputs: dL/dh = w2 for every example
                expected_g = w2.expand(5, 4)
            loss = model(x).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert list(rec.snapshots) == [1]
    snap = rec.snapshots[1]
    np.testing.assert_allclose(snap["activation"]["1"], expected_h.numpy(), rtol=1e-6)
    np.testing.assert_allclose(snap["gradient"]["1"], expected_g.numpy(), rtol=1e-6)
    assert rec.steps_seen == 3


def test_recorder_ignores_eval_passes_and_removes_its_hooks():
    model = _tiny_model()
    x = torch.ones(4, 3)
    rec = LayerRecorder(model, steps=[0, 1], max_examples=2)
    with rec:
        model.eval()
        model(x)
        model.train()
        model(x).sum().backward()
    assert rec.steps_seen == 1 and list(rec.snapshots) == [0]
    assert rec.snapshots[0]["activation"]["1"].shape == (2, 4)
    model(x).sum().backward()       # after exit: nothing recorded
    assert rec.steps_seen == 1
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert not model[1]._forward_hooks


def test_recorder_works_with_the_training_loop():
    gen = np.random.default_rng(0)
    X = gen.standard_normal((64, 6)).astype(np.float32)
    y = gen.integers(0, 3, 64)
    model = cnn.build_mlp(6, (8, 8), 3, norm="bn", activation="tanh", seed=0)
    rec = LayerRecorder(model, steps=[0, 7])
    with rec:
        cnn.train(model, cnn.make_loader(X, y, 16), epochs=2, lr=0.1,
                  val_loader=cnn.make_loader(X, y, 64, shuffle=False), progress=False,
                  device="cpu")
    assert rec.steps_seen == 8
    assert sorted(rec.snapshots) == [0, 7]
    assert rec.names == ["norm1", "act1", "norm2", "act2"]
    for snap in rec.snapshots.values():
        assert set(snap["activation"]) == set(rec.names) == set(snap["gradient"])
        # batch norm output at step 0 is standardized over the batch
    bn_out = rec.snapshots[0]["activation"]["norm1"]
    np.testing.assert_allclose(bn_out.mean(axis=0), 0, atol=1e-5)


@pytest.mark.parametrize(
    "args, kw, err, msg",
    [
        (("model", [0]), {}, TypeError, "torch.nn.Module"),
        ((None, []), {}, ValueError, "non-empty"),
        ((None, [-1]), {}, ValueError, "ints >= 0"),
        ((None, [0]), {"max_examples": 0}, ValueError, "max_examples"),
        ((None, [0]), {"module_types": (nn.Conv2d,)}, ValueError, "no module"),
    ],
)
def test_recorder_bad_input(args, kw, err, msg):
    model = _tiny_model()
    args = tuple(model if a is None else a for a in args)
    with pytest.raises(err, match=msg):
        LayerRecorder(*args, **kw)
