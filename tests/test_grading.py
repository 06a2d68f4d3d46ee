"""Tests of normcore.grading with the instructor's catalog (grader.catalog): diagnoses, the
mistake catalog, delegation, limits."""

import functools
import time

import numpy as np
import pytest
import torch

import grader.catalog  # noqa: F401  (registers the catalog, as the trusted grader does)
from normcore import grading, normalization, optim, regularization

# ------------------------------------------------------------------------------ cases

REFERENCES = {name: g.reference for name, g in grading.GRADED.items()}
# Correct implementations built by the mutant factories with no flaw: they share all the
# code of the mutants, so a mutant differs from them by its flaw alone.
FLAWLESS = {name: g.flawless for name, g in grading.GRADED.items()}


def cases(name):
    """Inputs on which every mistake of ``name`` shows (spatial shapes, eval mode, eps)."""
    return grading.GRADED[name].cases()


def check(name, fn, args, kwargs, **options):
    grading.check_graded(name, fn, args, kwargs, **options)


ENTRIES = [(m, name) for m in grading.CATALOG for name in m.applies_to]

# ------------------------------------------------------------------------------ catalog


def test_catalog_entries_are_well_formed():
    keys = [m.key for m in grading.CATALOG]
    assert len(keys) == len(set(keys))
    for m in grading.CATALOG:
        assert m.applies_to and all(isinstance(n, str) for n in m.applies_to)
        assert len(m.message) > 40 and callable(m.mutant)
    assert grading.get_mistake("bn_eps_outside_sqrt").applies_to == ("batch_norm_forward",)
    with pytest.raises(KeyError, match="unknown key"):
        grading.get_mistake("no_such_mistake")


def test_catalog_covers_the_issue_list():
    keys = {m.key for m in grading.CATALOG}
    for key in ("bn_unbiased_batch_var", "bn_eps_outside_sqrt", "bn_stats_per_position",
                "bn_running_not_updated", "bn_momentum_inverted",
                "bn_running_stats_in_training", "ln_over_batch_axis", "gn_strided_groups",
                "bn_backward_no_stat_terms", "bn_biased_running_var", "dropout_not_rescaled",
                "dropout_rescaled_at_test", "adam_no_bias_correction", "adam_step_off_by_one",
                "sgd_momentum_sign", "sgd_decay_on_update", "adam_decay_on_update"):
        assert key in keys
    assert {n for m in grading.CATALOG for n in m.applies_to} == set(REFERENCES)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_flawless_implementations_pass(name):
    for args, kwargs in cases(name):
        check(name, FLAWLESS[name], args, kwargs)


@pytest.mark.parametrize(("mistake", "name"), ENTRIES, ids=[f"{m.key}-{n}" for m, n in ENTRIES])
def test_every_mutant_fails_with_its_message(mistake, name):
    messages = []
    for args, kwargs in cases(name):
        try:
            check(name, mistake.mutant, args, kwargs)
        except AssertionError as exc:
            messages.append(str(exc))
    assert messages, f"{mistake.key} passed every case of {name}"
    assert any(mistake.message in msg for msg in messages), messages


@pytest.mark.parametrize(("mistake", "name"), ENTRIES, ids=[f"{m.key}-{n}" for m, n in ENTRIES])
def test_every_cause_named_shows_on_that_input(mistake, name):
    """A cause is named only when it is true on the input: every mistake a failing check names
    has a mutant that differs from the reference on that very input."""
    for args, kwargs in cases(name):
        try:
            check(name, mistake.mutant, args, kwargs)
        except AssertionError as exc:
            message = str(exc)
        else:
            continue
        for other in grading.mistakes_for(name):
            if other.message in message and other.message != grading.DTYPE_MESSAGE:
                with pytest.raises(AssertionError):  # it differs from the reference here
                    check(name, other.mutant, args, kwargs, mistakes=())


def test_two_mistakes_at_once_are_both_named():
    def student(x, gamma, beta, running_mean=None, running_var=None, *, training=True,
                momentum=0.1, eps=1e-5):
        m = x.shape[0]
        mean, var = x.mean(0), x.var(0)
        running_mean *= momentum  # inverted momentum ...
        running_mean += (1 - momentum) * mean
        running_var *= 1 - momentum
        running_var += momentum * var  # ... and the biased variance
        del m
        return gamma * (x - mean) / np.sqrt(var + eps) + beta, None

    rng = np.random.default_rng(1)
    args = (rng.standard_normal((6, 3)), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(AssertionError) as info:
        check("batch_norm_forward", student, args, {"momentum": 0.2})
    text = str(info.value)
    assert grading.get_mistake("bn_momentum_inverted").message in text
    assert grading.get_mistake("bn_biased_running_var").message in text


# ------------------------------------------------------------------------- delegation

X = np.random.default_rng(3).standard_normal((4, 3))
ONES, ZEROS = np.ones(3), np.zeros(3)


def delegating_alias(x, gamma, beta, *args, **kwargs):
    from normcore.normalization import batch_norm_forward as helper

    return helper(x, gamma, beta, *args, **kwargs)


def delegating_torch(x, gamma, beta, *args, **kwargs):
    t = torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma),
                                       torch.from_numpy(beta), training=True)
    return t.numpy(), None


def delegating_torch_c(x, gamma, beta, *args, **kwargs):
    t = torch.batch_norm(torch.from_numpy(x), torch.from_numpy(gamma), torch.from_numpy(beta),
                         None, None, True, 0.1, 1e-5, False)
    return t.numpy(), None


@pytest.mark.parametrize("student", [
    normalization.batch_norm_forward,
    delegating_alias,
    functools.partial(normalization.batch_norm_forward),
    delegating_torch,
    delegating_torch_c,
], ids=["reference", "alias", "partial", "torch-functional", "torch-c-op"])
def test_delegation_fails_with_a_clear_message(student):
    with pytest.raises(AssertionError, match="computes the graded operation for you"):
        check("batch_norm_forward", student, (X, ONES, ZEROS), {})


@pytest.mark.parametrize("module", ["torch.optim.sgd", "torch.nn.modules.batchnorm",
                                    "sklearn.preprocessing._data", "normcore.optim"])
def test_calls_into_forbidden_modules_are_seen(module):
    # A function that lives in the module (importing the real ones takes seconds).
    namespace = {"__name__": module}
    exec("def step(x):\n    return x + 1\n", namespace)
    with grading.student_code("step") as watch:
        namespace["step"](1.0)
    assert watch.delegated == f"{module}.step"


def test_allowed_helpers_are_not_delegation():
    from normcore import _checks, gradcheck

    def student(x, gamma, beta, *args, **kwargs):
        _checks.check_float_array("student", "x", x)
        gradcheck.rel_error(x, x)
        return FLAWLESS["batch_norm_forward"](x, gamma, beta, *args, **kwargs)

    check("batch_norm_forward", student, (X, ONES, ZEROS), {})


# ---------------------------------------------------------------- limits and robustness


def test_infinite_loop_is_stopped_even_if_the_student_catches_exceptions():
    def student(x, *args, **kwargs):
        while True:
            try:
                time.sleep(0.01)
            except Exception:
                pass

    start = time.perf_counter()
    with pytest.raises(AssertionError, match="did not finish within 0.3 s"):
        check("batch_norm_forward", student, (X, ONES, ZEROS), {}, time_limit=0.3)
    assert time.perf_counter() - start < 3


def test_printed_output_is_captured_and_summarized(capsys):
    def student(x, gamma, beta, *args, **kwargs):
        print("spam " * 1_000_000)
        return x * 0, None

    with pytest.raises(AssertionError) as info:
        check("batch_norm_forward", student, (X, ONES, ZEROS), {})
    assert "printed 5000001 characters" in str(info.value)
    assert len(str(info.value)) < 2000
    assert len(capsys.readouterr().out) == 0


def test_exception_in_student_code_is_reported_with_the_input():
    def student(x, gamma, beta, *args, **kwargs):
        return x @ np.ones((5, 5)), None

    with pytest.raises(AssertionError, match=r"raised ValueError: .* \(on x of shape \(4, 3\)"):
        check("batch_norm_forward", student, (X, ONES, ZEROS), {})


def test_not_implemented_says_so():
    def student(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        check("batch_norm_forward", student, (X, ONES, ZEROS), {})


def test_modifying_an_input_in_place_is_named():
    def student(x, gamma, beta, *args, **kwargs):
        x -= x.mean(axis=0)
        x /= np.sqrt(x.var(axis=0) + 1e-5)
        return gamma * x + beta, None

    x = X.copy()
    with pytest.raises(AssertionError, match="changed its argument x in place"):
        check("batch_norm_forward", student, (x, ONES, ZEROS), {})
    np.testing.assert_array_equal(x, X)  # the check works on copies


def test_rebinding_running_stats_is_explained_without_the_catalog():
    def student(x, gamma, beta, running_mean=None, running_var=None, *, training=True,
                momentum=0.1, eps=1e-5):
        out, _ = FLAWLESS["batch_norm_forward"](x, gamma, beta, eps=eps)
        running_mean = running_mean + 1.0  # rebinds the name: the caller sees no change
        return out, None

    with pytest.raises(AssertionError, match="should be updated in place but is unchanged"):
        check("batch_norm_forward", student, (X, ONES, ZEROS, ZEROS.copy(), ONES.copy()), {},
              mistakes=())


@pytest.mark.parametrize(("result", "pattern"), [
    (None, r"returned None: did you forget `return out, cache`"),
    (np.zeros((4, 3)), r"must return a tuple of 2 values \(out, cache\)"),
    ((np.zeros((4, 3)),), r"returned 1 values, expected 2"),
    ((np.zeros(3), None), r"has shape \(3,\) but expected \(4, 3\)"),
    ((np.zeros((4, 3), np.float32), None), r"has dtype float32 but expected float64"),
    ((torch.zeros(4, 3), None), r"is a torch tensor"),
    ((np.full((4, 3), np.nan), None), r"contains NaN \(first at index \(0, 0\)\)"),
    (([[0.0] * 3] * 4, None), r"must be a numpy.ndarray of shape \(4, 3\), got list"),
])
def test_malformed_results_get_specific_messages(result, pattern):
    with pytest.raises(AssertionError, match=pattern):
        check("batch_norm_forward", lambda *a, **k: result, (X, ONES, ZEROS), {}, mistakes=())


@pytest.mark.parametrize(("got", "hint"), [
    ((4, 3), "Did you drop the spatial axes?"),
    ((4, 3, 5, 2, 1), "Drop the extra axes of length 1"),
    ((2, 5, 3, 4), "Is it transposed?"),
    ((3,), "Did you reduce over too many axes"),
])
def test_shape_hints(got, hint):
    with pytest.raises(AssertionError, match=hint):
        grading.assert_close("out", np.zeros(got), np.zeros((4, 3, 5, 2)))


def test_assert_close_tolerances_follow_the_dtype():
    expected = np.linspace(-1, 1, 7)
    grading.assert_close("out", expected * (1 + 1e-8), expected)
    with pytest.raises(AssertionError, match=r"largest error .* at index \(6,\)"):
        grading.assert_close("out", expected + np.eye(7)[6] * 1e-3, expected)
    e32 = expected.astype(np.float32)
    grading.assert_close("out", e32 * np.float32(1 + 1e-6), e32)
    grading.assert_close("value", 1.0 + 1e-9, 1.0)


def test_check_example_compares_the_listed_parts():
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    args = (x, np.ones(2), np.zeros(2), np.zeros(2), np.ones(2))
    expected = {"out": [[-1.0, -1.0], [1.0, 1.0]], "running_mean": [0.2, 0.4],
                "running_var": [1.1, 1.7]}
    grading.check_example(FLAWLESS["batch_norm_forward"], args, {"eps": 0.0},
                          name="batch_norm_forward", returns=("out", None), expected=expected)
    mutant = grading.get_mistake("bn_momentum_inverted").mutant
    with pytest.raises(AssertionError, match="momentum convention is inverted"):
        grading.check_example(mutant, args, {"eps": 0.0}, name="batch_norm_forward",
                              returns=("out", None), expected=expected)


# --------------------------------------------------------------------- gradient checks


def test_check_gradient_accepts_a_correct_backward_and_diagnoses_a_wrong_one():
    rng = np.random.default_rng(5)
    args = (rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal(3))
    forward, backward = normalization.batch_norm_forward, normalization.batch_norm_backward
    grading.check_gradient(forward, backward, args, name="batch_norm_backward", forbidden=())

    def no_stat_terms(dout, cache):
        dx, dgamma, dbeta = backward(dout, cache)
        return dout * cache["gamma"] * cache["inv_std"], dgamma, dbeta

    with pytest.raises(AssertionError) as info:
        grading.check_gradient(forward, no_stat_terms, args, name="batch_norm_backward",
                               forbidden=())
    text = str(info.value)
    assert "dx from your backward does not match the numerical gradient" in text
    assert grading.get_mistake("bn_backward_no_stat_terms").message in text

    def doubled(dout, cache):
        return tuple(2 * g for g in backward(dout, cache))

    with pytest.raises(AssertionError, match="dx, dgamma, dbeta from your backward do not"):
        grading.check_gradient(forward, doubled, args, name="batch_norm_backward", forbidden=())


def test_check_gradient_diagnoses_a_backward_that_returns_one_array():
    # dropout_backward returns dx alone, not a tuple; its mistakes must still be named.
    x = np.random.default_rng(8).standard_normal((6, 5))
    kwargs = {"p": 0.5, "rng": 3}
    forward = regularization.dropout_forward

    def no_scale(dout, cache):
        return regularization.dropout_backward(dout, cache) * 0.5

    with pytest.raises(AssertionError) as info:
        grading.check_gradient(forward, no_scale, (x,), kwargs, name="dropout_backward",
                               forbidden=())
    assert grading.get_mistake("dropout_backward_no_scale").message in str(info.value)


def test_check_gradient_skips_integer_arguments_and_catches_delegation():
    rng = np.random.default_rng(6)
    args = (rng.standard_normal((2, 4, 3)), 2, rng.standard_normal(4), rng.standard_normal(4))
    grading.check_gradient(normalization.group_norm_forward, normalization.group_norm_backward,
                           args, name="group_norm_backward", forbidden=())
    with pytest.raises(AssertionError, match="calls normcore.normalization.group_norm_forward"):
        grading.check_gradient(normalization.group_norm_forward,
                               normalization.group_norm_backward, args,
                               name="group_norm_backward")


def test_backward_through_composes_and_keeps_the_signature():
    import inspect

    composite = grading.backward_through(normalization.layer_norm_forward,
                                         normalization.layer_norm_backward)
    params = list(inspect.signature(composite).parameters)
    assert params[:4] == ["dout", "x", "gamma", "beta"]
    x = np.random.default_rng(0).standard_normal((3, 4))
    dx, dgamma, dbeta = composite(np.ones_like(x), x, np.ones(4), np.zeros(4))
    np.testing.assert_allclose(dbeta, np.full(4, 3.0))
    bad = grading.backward_through(lambda x: x, normalization.layer_norm_backward)
    with pytest.raises(TypeError, match=r"must return \(out, cache\)"):
        bad(x, x)


def test_run_optimizer_stacks_the_iterates_and_checks_the_step():
    w0, grads = np.zeros(2), np.ones((3, 2))
    path = grading.run_optimizer(optim.sgd, w0, grads, lr=0.5)
    np.testing.assert_allclose(path[:, 0], [0.0, -0.5, -1.0, -1.5])
    with pytest.raises(AssertionError, match="a step must return the new parameter"):
        grading.check_optimizer(lambda w, dw, state, **h: None, optim.sgd, w0, grads,
                                {"lr": 0.5}, name="sgd")


def test_returned_objects_are_compared_by_attribute():
    from normcore import preprocessing

    x = np.random.default_rng(8).standard_normal((20, 3)) * 3 + 1
    returns = (".mean", ".var")
    grading.check_against_reference(preprocessing.fit_standardize, preprocessing.fit_standardize,
                                     (x,), name="fit_standardize", returns=returns, forbidden=())

    def unbiased(X, eps=1e-5):
        return preprocessing.Standardization(X.mean(0), X.var(0, ddof=1), eps)

    with pytest.raises(AssertionError, match="var"):
        grading.check_against_reference(unbiased, preprocessing.fit_standardize, (x,),
                                        name="fit_standardize", returns=returns, mistakes=())
    with pytest.raises(AssertionError, match="must return an object with the attributes mean"):
        grading.check_against_reference(lambda X: (X.mean(0), X.var(0)),
                                        preprocessing.fit_standardize, (x,),
                                        name="fit_standardize", returns=returns, mistakes=())


# ------------------------------------------------------- diagnoses that are true (regressions)


def _adam_not_writing_back(w, dw, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=0.0, amsgrad=False):
    """The reported student: m and v computed from the state but never stored back."""
    beta1, beta2 = betas
    if not state:
        state.update(step=0, exp_avg=np.zeros_like(w), exp_avg_sq=np.zeros_like(w))
    state["step"] += 1
    t = state["step"]
    g = dw + weight_decay * w
    m = beta1 * state["exp_avg"] + (1 - beta1) * g
    v = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    return w - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)


INERT_UNDER_DEFAULTS = ("adam_eps_inside_sqrt", "adam_decay_on_update",
                        "adam_amsgrad_max_of_corrected", "adam_in_place")


def test_inert_mistakes_are_not_named_when_the_state_comes_from_the_student():
    """The old visible test carried the student's own state from step to step; with eps = 0,
    weight_decay = 0 and amsgrad = False four inert mistakes reproduced the wrong second step
    (the mutants, run on the student's wrong state, erred the same way) and were named."""
    hyper = {"lr": 0.1, "betas": (0.5, 0.5), "eps": 0.0}
    w, state = np.array([1.0, 1.0]), {}
    _adam_not_writing_back(w, np.array([1.0, 2.0]), state, **hyper)
    w = np.array([0.9, 0.9])
    with pytest.raises(AssertionError) as info:
        grading.check_example(_adam_not_writing_back, (w, np.array([1.0, -1.0]), state), hyper,
                              name="adam", returns="new_w", expected={"new_w": [0.8, 0.9]})
    message = str(info.value)
    for key in INERT_UNDER_DEFAULTS:
        assert grading.get_mistake(key).message not in message, key


def test_a_trajectory_from_an_empty_state_names_the_true_cause():
    hyper = {"lr": 0.1, "betas": (0.5, 0.5), "eps": 0.0}
    with pytest.raises(AssertionError) as info:
        grading.check_steps(_adam_not_writing_back, np.ones(2), [[1.0, 2.0], [1.0, -1.0]], hyper,
                            name="adam", expected=[[0.9, 0.9], [0.8, 0.9]])
    message = str(info.value)
    assert grading.get_mistake("adam_state_not_written_back").message in message
    for key in INERT_UNDER_DEFAULTS:
        assert grading.get_mistake(key).message not in message, key


def test_without_a_cause_the_first_differing_step_is_named():
    def late(w, dw, state, *, lr=0.1):
        state["t"] = state.get("t", 0) + 1
        return w - lr * dw * (2.0 if state["t"] == 3 else 1.0)

    with pytest.raises(AssertionError, match=r"first differ at step t = 3 .*at index \(1,\)"):
        grading.check_steps(late, np.zeros(2), [[0.0, 1.0]] * 3, {"lr": 0.1}, name="sgd",
                            expected=[[0.0, -0.1], [0.0, -0.2], [0.0, -0.3]], mistakes=())


def test_check_example_reports_an_input_modified_in_place():
    def student(w, dw, state, *, lr, **hyper):
        w -= lr * dw
        return w

    w = np.array([1.0, 2.0])
    with pytest.raises(AssertionError, match="changed its argument w in place"):
        grading.check_example(student, (w, np.ones(2), {}), {"lr": 0.5}, name="sgd",
                              returns="new_w", expected={"new_w": [0.5, 1.5]}, mistakes=())
    np.testing.assert_array_equal(w, [1.0, 2.0])


def test_a_float64_bias_on_the_bias_none_path_is_caught_and_named():
    mutant = grading.get_mistake("fold_bias_none_float64").mutant
    weight = np.ones((2, 3), np.float32)
    c = np.array([1.0, 2.0], np.float32)
    with pytest.raises(AssertionError) as info:
        check("fold_batch_norm", mutant, (weight, None, c, c, c, c), {})
    assert "bias has dtype float64 but expected float32" in str(info.value)
    assert grading.get_mistake("fold_bias_none_float64").message in str(info.value)


def test_adamw_that_ignores_amsgrad_loses_points():
    def adamw(w, dw, state, *, amsgrad=False, **hyper):
        return FLAWLESS["adamw"](w, dw, state, amsgrad=False, **hyper)

    (args, hyper), = [c for c in cases("adamw") if c[1].get("amsgrad")]
    with pytest.raises(AssertionError, match="ignores amsgrad=True"):
        check("adamw", adamw, args, hyper)


def test_check_backward_grades_the_backward_on_its_own():
    rng = np.random.default_rng(5)
    x, gamma, beta = rng.standard_normal((6, 3)), rng.standard_normal(3), rng.standard_normal(3)
    args = (rng.standard_normal((6, 3)), x, gamma, beta)

    def eps_outside_forward(x, gamma, beta, *, eps=1e-5):
        mean, std = x.mean(axis=0), np.sqrt(x.var(axis=0)) + eps
        xhat = (x - mean) / std
        return gamma * xhat + beta, (xhat, std, gamma)

    def backward(dout, cache):  # right for the right forward, on this forward's cache
        xhat, std, gamma = cache
        g = dout * gamma
        dx = (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0)) / std
        return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)

    def wrong_backward(dout, cache):
        dx, dgamma, dbeta = backward(dout, cache)
        return 2 * dx, dgamma, dbeta

    options = dict(name="batch_norm_backward", returns=("dx", "dgamma", "dbeta"))
    grading.check_backward(eps_outside_forward, backward, normalization.batch_norm_forward,
                           normalization.batch_norm_backward, args, {"eps": 0.1}, **options)
    # Graded where the forward is right (eps = 0): a wrong backward is still wrong.
    with pytest.raises(AssertionError, match=r"dx is wrong \(on .*eps=0.0\)"):
        grading.check_backward(eps_outside_forward, wrong_backward,
                               normalization.batch_norm_forward,
                               normalization.batch_norm_backward, args, {"eps": 0.1}, **options)

    def shifted_forward(x, gamma, beta, *, eps=1e-5):  # wrong everywhere
        out, cache = eps_outside_forward(x, gamma, beta, eps=eps)
        return out + 1.0, (cache[0], cache[1], 3 * cache[2])

    with pytest.raises(AssertionError, match="your shifted_forward is wrong on this input.*fix "
                                             "shifted_forward first"):
        grading.check_backward(shifted_forward, wrong_backward, normalization.batch_norm_forward,
                               normalization.batch_norm_backward, args, {"eps": 0.1}, **options)
