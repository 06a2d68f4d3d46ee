"""Tests for normcore.recurrent: the plain cell is torch.nn.RNN, each normalization computes
its statistics over the axes it claims, and the adding problem is what it says."""

import numpy as np
import pytest
import torch

from normcore.recurrent import RNN_NORMS, NormalizedRNN, adding_problem

torch.set_num_threads(1)


def _x(n=8, steps=5, features=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, steps, features, generator=gen, dtype=torch.float64) * 2 + 1


def test_plain_cell_matches_torch_rnn():
    model = NormalizedRNN(2, 6, norm="none", seed=0).double()
    with torch.no_grad():
        model.bias.normal_()
    rnn = torch.nn.RNN(2, 6, batch_first=True, nonlinearity="tanh").double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(model.weight_ih)
        rnn.weight_hh_l0.copy_(model.weight_hh)
        rnn.bias_ih_l0.copy_(model.bias)
        rnn.bias_hh_l0.zero_()
    x = _x()
    torch.testing.assert_close(model.hidden_states(x), rnn(x)[0])


def test_layer_norm_cell_standardizes_each_example_and_step():
    model = NormalizedRNN(2, 6, norm="ln", seed=0).double()
    x = _x()
    h = model.hidden_states(x)
    pre = torch.atanh(h)                        # gamma = 1, beta = 0 at initialization
    torch.testing.assert_close(pre.mean(dim=-1), torch.zeros(8, 5, dtype=torch.float64),
                               atol=1e-8, rtol=0)
    torch.testing.assert_close(pre.var(dim=-1, unbiased=False),
                               torch.ones(8, 5, dtype=torch.float64), atol=1e-3, rtol=0)


def test_step_batch_norm_keeps_statistics_per_time_step():
    model = NormalizedRNN(2, 6, norm="bn-step", max_steps=5, seed=0).double()
    x = _x() * torch.arange(1, 6, dtype=torch.float64).view(1, 5, 1)   # scale grows with t
    model.train()
    model(x)
    means = model.bn_input.running_mean
    expected = 0.1 * (x @ model.weight_ih.T).mean(dim=0)                # momentum 0.1 from 0
    torch.testing.assert_close(means, expected.detach())
    gamma = model.bn_input.weight.detach()
    torch.testing.assert_close(gamma, torch.full((6,), 0.1, dtype=torch.float64))


def test_sequence_batch_norm_shares_statistics_over_time():
    model = NormalizedRNN(2, 6, norm="bn-seq", seed=0).double()
    x = _x()
    model.train()
    model(x)
    inputs = (x @ model.weight_ih.T).reshape(-1, 6)
    torch.testing.assert_close(model.bn_input.running_mean, 0.1 * inputs.mean(dim=0).detach())


@pytest.mark.parametrize("norm", RNN_NORMS)
def test_batch_dependence_in_training_mode(norm):
    model = NormalizedRNN(2, 6, norm=norm, seed=0).double()
    model.train()
    x = _x()
    other = torch.cat([x[:1], _x(seed=1)[1:]])
    differs = not torch.allclose(model(x)[:1], model(other)[:1])
    assert differs == norm.startswith("bn")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown norm 'gn'"):
        NormalizedRNN(2, 4, norm="gn")
    model = NormalizedRNN(2, 4, norm="bn-step", max_steps=3)
    with pytest.raises(ValueError, match="exceeds max_steps=3"):
        model(torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match=r"expected input \(N, T, features\)"):
        model(torch.zeros(2, 2))


def test_adding_problem():
    x, y = adding_problem(500, 20, rng=0)
    assert x.shape == (500, 20, 2) and y.shape == (500,) and x.dtype == np.float32
    markers = x[..., 1]
    np.testing.assert_array_equal(markers.sum(axis=1), 2.0)
    assert np.all(markers[:, :10].sum(axis=1) == 1.0)          # one marker in each half
    np.testing.assert_allclose(y, (x[..., 0] * markers).sum(axis=1), rtol=1e-6)
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 0.03            # the baseline MSE is 1/6
    again, _ = adding_problem(500, 20, rng=0)
    np.testing.assert_array_equal(x, again)
    with pytest.raises(ValueError, match="length must be in"):
        adding_problem(5, 1, rng=0)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        adding_problem(5, 4, rng=0, dtype=np.int32)
