"""Tests for normcore.population: the re-parameterization keeps the function, centers or whitens
the layer's input, and the layer is independent of the batch."""

import numpy as np
import pytest
import torch

from normcore.population import PopulationNormLinear, build_population_mlp

torch.set_num_threads(1)


def _inputs(n=256, d=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) @ mixing + 3.0


@pytest.mark.parametrize("mode", ["center", "whiten"])
def test_refresh_keeps_the_function_and_normalizes_the_input(mode):
    layer = PopulationNormLinear(6, 4, mode=mode, eps=0.0).double()
    x = _inputs()
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    layer.eval()
    before = layer(x)
    mean = x.mean(dim=0)
    cov = torch.cov(x.T, correction=0)
    layer.refresh(mean, cov)
    torch.testing.assert_close(layer(x), before, rtol=1e-10, atol=1e-10)
    inner = (x - layer.center) @ layer.transform.T                   # what V sees
    torch.testing.assert_close(inner.mean(dim=0), torch.zeros(6, dtype=torch.float64),
                               atol=1e-10, rtol=0)
    expected = torch.eye(6, dtype=torch.float64) if mode == "whiten" else cov
    torch.testing.assert_close(torch.cov(inner.T, correction=0), expected, atol=1e-8,
                               rtol=1e-8)


def test_training_refreshes_at_the_first_step_and_every_k_steps():
    layer = PopulationNormLinear(6, 3, mode="whiten", refresh_every=5, momentum=1.0,
                                 eps=0.0).double()
    layer.train()
    previous = layer.transform.clone()
    changed = []
    for step in range(1, 11):
        x = _inputs(n=64, seed=step)
        layer(x)
        changed.append(not torch.equal(layer.transform, previous))
        previous = layer.transform.clone()
    assert changed == [s in (1, 5, 10) for s in range(1, 11)]
    # momentum 1: the running statistics are those of the last batch (unbiased covariance)
    torch.testing.assert_close(layer.center, x.mean(dim=0))
    torch.testing.assert_close(layer.running_cov, torch.cov(x.T))


def test_output_of_an_example_does_not_depend_on_its_batch():
    model = build_population_mlp(6, (8,), 3, mode="center").double()
    model.train()
    x = _inputs(n=10)
    alone = model(x[:1])
    with_others = model(torch.cat([x[:1], x[1:] * 5]))
    torch.testing.assert_close(with_others[:1], alone)


def test_centering_trains_and_gradient_of_v_sees_centered_inputs():
    torch.manual_seed(0)
    layer = PopulationNormLinear(6, 1, mode="center", eps=0.0).double()
    x = _inputs()
    layer.refresh(x.mean(dim=0), torch.cov(x.T))
    layer.eval()
    out = layer(x)
    out.sum().backward()
    # d(sum y)/dV = sum_i U (x_i - c): zero for centered inputs
    np.testing.assert_allclose(layer.weight.grad.numpy(), 0.0, atol=1e-9)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(mode="pca"), "unknown mode 'pca'"),
    (dict(refresh_every=0), "refresh_every must be >= 1"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PopulationNormLinear(3, 2, **kwargs)
