"""Common mistakes in learning-rate schedules: off-by-one epochs, floors, restarts, eta_min."""

from __future__ import annotations

import math
from collections.abc import Callable

from normcore import schedules as _ref
from normcore.grading import _graded, _register


def _step_lr_mutant(flaw: str) -> Callable:
    def step_lr(t, *, lr, step_size, gamma=0.1):
        if flaw == "no_floor":
            return lr * gamma ** (t / step_size)
        if flaw == "early":
            return lr * gamma ** ((t + 1) // step_size)
        if flaw == "late":
            return lr * gamma ** (max(t - 1, 0) // step_size)
        return lr * gamma ** (t // step_size)

    return step_lr


_register("step_lr_no_floor", "step_lr",
          "Your rate decays smoothly, gamma**(t / step_size). Step decay keeps the rate "
          "constant for step_size epochs and then drops it: use the number of completed "
          "periods, gamma**(t // step_size) (integer division).", _step_lr_mutant("no_floor"))
_register("step_lr_decays_early", "step_lr",
          "Your rate drops one epoch too early. Epochs are counted from t = 0, and the first "
          "drop happens at t = step_size: lr * gamma**(t // step_size), not (t + 1).",
          _step_lr_mutant("early"))
_register("step_lr_decays_late", "step_lr",
          "Your rate drops one epoch too late (epochs counted from 1?). With t = 0, 1, 2, ... "
          "the first drop happens at t = step_size: lr * gamma**(t // step_size).",
          _step_lr_mutant("late"))


def _restarts_mutant(flaw: str) -> Callable:
    def cosine_annealing_warm_restarts_lr(t, *, lr, T_0, T_mult=1, eta_min=0.0):
        t_cur, t_i = t, T_0
        while (t_cur > t_i) if flaw == "restart_late" else (t_cur >= t_i):
            t_cur -= t_i
            if flaw != "ignore_T_mult":
                t_i *= T_mult
        low = 0.0 if flaw == "eta_min_forgotten" else eta_min
        return low + (lr - low) * (1 + math.cos(math.pi * t_cur / t_i)) / 2

    return cosine_annealing_warm_restarts_lr


_register("restarts_ignore_T_mult", "cosine_annealing_warm_restarts_lr",
          "All your cycles have length T_0. After each restart the cycle length is "
          "multiplied by T_mult: T_0, T_0 * T_mult, T_0 * T_mult**2, ... (restarts at "
          "t = T_0, T_0 + T_0 * T_mult, ...).", _restarts_mutant("ignore_T_mult"))
_register("restarts_eta_min_forgotten", "cosine_annealing_warm_restarts_lr",
          "Your cosine goes from lr down to 0 instead of eta_min: "
          "eta_min + (lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2.",
          _restarts_mutant("eta_min_forgotten"))
_register("restarts_one_step_late", "cosine_annealing_warm_restarts_lr",
          "Your restart comes one step late: at the end of a cycle, T_cur == T_i, the rate "
          "must already jump back to lr (T_cur = 0 of the next cycle), so leave a cycle when "
          "T_cur >= T_i, not T_cur > T_i.", _restarts_mutant("restart_late"))


def _step_lr_cases():
    kwargs = [{"lr": 0.1, "step_size": 3, "gamma": 0.5}, {"lr": 2.0, "step_size": 1}]
    return [((t,), kw) for kw in kwargs for t in range(8)]


def _restarts_cases():
    kwargs = [{"lr": 0.1, "T_0": 3, "T_mult": 2, "eta_min": 0.01},
              {"lr": 1.0, "T_0": 2, "T_mult": 1, "eta_min": 0.2}]
    return [((t,), kw) for kw in kwargs for t in range(12)]


_graded("step_lr", _ref.step_lr, _step_lr_mutant("none"), _step_lr_cases,
        returns="learning rate")
_graded("cosine_annealing_warm_restarts_lr", _ref.cosine_annealing_warm_restarts_lr,
        _restarts_mutant("none"), _restarts_cases, returns="learning rate")
