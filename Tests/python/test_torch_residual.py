"""ERAContinuous(learn_residual=True): the projection of the learned residual into
[0, max_residual] is exact in the parameter's dtype, so that no optimizer step, however
large, leaves a residual the next forward refuses (InfeasibleTargetError)."""

import math

import pytest

torch = pytest.importorskip("torch")

import era  # noqa: E402
import era.torch as et  # noqa: E402
from era._formulas import GAUSSIAN_ENTROPY_PER_DIM as C  # noqa: E402

DIMS = (1, 2, 6, 17, 61, 1000)
PARAM_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
BACKENDS = ("libera", "native")


def targets(dim, log_std_max):
    """SAC-ERA's default, a few fixed targets and targets just below the feasibility limit
    D*(c + log_std_max), where max_residual is small and the cap's rounding matters most."""
    limit = dim * (C + log_std_max)
    return (None, -3.0, 0.0, 1.0, limit - 0.1, limit - 1e-6)


def settings():
    for log_std_min, log_std_max in ((-8.0, 0.0), (-5.0, 2.0)):
        for dim in DIMS:
            for target in targets(dim, log_std_max):
                yield dim, target, log_std_min, log_std_max


def rows_dtype(param_dtype):
    """Half-precision residuals go with half-precision rows (a module moved with .to())."""
    return param_dtype if param_dtype in (torch.bfloat16, torch.float16) else torch.float32


def floor_holds(log_std, target, residual, log_std_min, log_std_max):
    report = era.check_continuous(log_std.detach().float().numpy(), target, residual=residual,
                                  log_std_min=log_std_min, log_std_max=log_std_max)
    return report.holds


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", PARAM_DTYPES, ids=str)
def test_projection_after_an_overshoot_is_feasible_in_the_parameters_dtype(dtype, backend):
    torch.manual_seed(0)
    for dim, target, log_std_min, log_std_max in settings():
        module = et.ERAContinuous(dim, target, learn_residual=True, log_std_min=log_std_min,
                                  log_std_max=log_std_max, backend=backend).to(dtype)
        rows = rows_dtype(dtype)
        top = module.max_residual
        assert top > 0
        with torch.no_grad():
            module.residual.fill_(torch.finfo(dtype).max)  # an optimizer step far past the cap
        where = f"D={dim} H0={module.target_entropy} log_std_max={log_std_max} {dtype} {backend}"
        _, log_std = module(torch.zeros(3, dim, dtype=rows), torch.randn(3, dim, dtype=rows))
        delta = module.residual.item()
        assert delta <= top, where
        # the cap is the largest value of the dtype within a relative 1e-9 of max_residual
        # (a few steps of the dtype lower only where a path's own sum for K needs it)
        above = module.residual.detach().clone()
        for _ in range(4):
            above = torch.nextafter(above, torch.tensor(math.inf, dtype=dtype))
        assert above.item() > top - 1e-9 * max(1.0, top), where
        assert floor_holds(log_std, module.target_entropy, delta, log_std_min, log_std_max), where
        with torch.no_grad():
            module.residual.fill_(-torch.finfo(dtype).max)  # and far below 0
        module(torch.zeros(3, dim, dtype=rows), torch.randn(3, dim, dtype=rows))
        assert module.residual.item() == 0.0, where


def test_float64_residual_with_half_precision_rows_on_the_device_path():
    # The device path sums K in float32 for half-precision rows: the float64 cap must stay
    # feasible when both terms of K round to float32.
    for dim, target, log_std_min, log_std_max in settings():
        module = et.ERAContinuous(dim, target, learn_residual=True, log_std_min=log_std_min,
                                  log_std_max=log_std_max, backend="native").double()
        for rows in (torch.bfloat16, torch.float16):
            with torch.no_grad():
                module.residual.fill_(1e300)
            module(torch.zeros(2, dim, dtype=rows), torch.randn(2, dim, dtype=rows))
            assert 0 < module.residual.item() <= module.max_residual


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64), ids=str)
def test_residual_tuning_with_aggressive_steps_never_stops(dtype):
    # The documented loop (forward, residual_loss, step) with steps far larger than the
    # feasible range: Adam with lr=1 against a target near the limit (the tuning loss pushes
    # delta up, past the cap at every step) and SGD with lr=100 against SAC-ERA's default
    # (it pushes delta down, below 0). 1,000 steps, the entropy floor checked at each.
    torch.manual_seed(1)
    for dim, target, make in ((6, 6 * C - 0.05, lambda p: torch.optim.Adam(p, lr=1.0)),
                              (17, 17 * C - 1e-6, lambda p: torch.optim.Adam(p, lr=1.0)),
                              (6, None, lambda p: torch.optim.SGD(p, lr=100.0))):
        module = et.ERAContinuous(dim, target, residual=0.01, learn_residual=True).to(dtype)
        optimizer = make(module.parameters())
        at_cap = at_zero = 0
        for step in range(1000 // 3):
            mean = torch.randn(8, dim, dtype=dtype)
            mean, log_std = module(mean, 2 * torch.randn(8, dim, dtype=dtype))
            delta = module.residual.item()
            assert 0 <= delta <= module.max_residual
            assert floor_holds(log_std, module.target_entropy, delta, -8.0, 0.0), (dim, target, step)
            top = module.max_residual
            at_cap += delta >= top - 1e-9 * max(1.0, top) - 1e-6 * top
            at_zero += delta == 0
            optimizer.zero_grad()
            module.residual_loss(mean, log_std).backward()
            optimizer.step()
        # the steps did reach the ends of the range, again and again
        assert at_cap + at_zero > 200, (dim, target, at_cap, at_zero)
