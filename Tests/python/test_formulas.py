"""era._formulas, the one second implementation of ERA, held to libera in every array library
that uses it: numpy (the benchmarks' baseline), torch (the torch device path) and jax.numpy
(the benchmarks' JAX baseline), on the same inputs. One parametrised test per formula."""

import contextlib
import math

import numpy as np
import pytest

import era
from era import _formulas as F

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

LIBRARIES = ["numpy", "torch", "jax"]


class Library:
    """One array library: its namespace, and conversions from and to numpy."""

    def __init__(self, name):
        self.name = name
        self.xp = {"numpy": np, "torch": torch, "jax": jnp}[name]
        self.ops = F.namespace(self.xp)

    def __call__(self, a):
        if self.name == "torch":
            return torch.from_numpy(np.ascontiguousarray(a))
        if self.name == "jax":
            return jnp.asarray(a)
        return np.asarray(a)

    def context(self):
        """float64 in JAX for the length of a test (libera's double precision)."""
        return jax.enable_x64(True) if self.name == "jax" else contextlib.nullcontext()


def back(x):
    return np.asarray(x.detach().numpy() if hasattr(x, "detach") else x)


@pytest.fixture(params=LIBRARIES)
def lib(request):
    library = Library(request.param)
    with library.context():
        yield library


def logits(rng, rows, cols, scale=3.0):
    z = rng.normal(size=(rows, cols)) * scale
    z[0, 0] += 40.0  # a near one-hot row
    if rows > 2:
        z[1, :] = 0.5  # ties
    return z


@pytest.mark.parametrize("mode", ["exact", "tight", "reference"])
@pytest.mark.parametrize("classes, tau", [(2, 4.0), (10, 4.0), (1000, 4.0), (10, 2.75), (50, 1e4)])
def test_discrete(lib, rng, mode, classes, tau):
    z = logits(rng, 6, classes)
    g = rng.normal(size=z.shape)
    # the middle of the mode's feasible range: 1 + log(up) .. 1 + log(D up), or 0 .. log D
    h0 = 1 + math.log(math.log(tau) / tau) + 0.5 * math.log(classes) if mode != "tight" else 0.5 * math.log(classes)
    c = era.discrete_constant(classes, h0, tau=tau, mode=mode)
    a, b = F.discrete_slope_offset(classes, c, tau)
    out = back(F.discrete_forward(lib.ops, lib(z), a, b, tau, mode))
    np.testing.assert_allclose(out, era.discrete_forward(z, h0, tau=tau, mode=mode), rtol=2e-14, atol=0)
    grad = back(F.discrete_backward(lib.ops, lib(z), lib(g), a, b, tau, mode))
    want = era.discrete_backward(z, g, h0, tau=tau, mode=mode)
    scale = np.abs(want).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(grad / scale, want / scale, rtol=0, atol=1e-12)


def test_discrete_inverse_over_its_range(lib):
    # Down to the smallest normal double and up to the branch point's neighbourhood.
    y = np.concatenate([np.geomspace(1e-307, 0.3, 400), np.linspace(0.3, 1 / math.e - 1e-6, 50)])
    t = back(F.log_inverse_entropy(lib.ops, lib(y)))
    residual = t + np.log(-t) - np.log(y)
    assert np.max(np.abs(residual) / np.maximum(1.0, np.abs(t))) < 4e-15
    assert np.all(t <= -1)


@pytest.mark.parametrize("dim, target", [(1, -1.0), (6, -3.0), (61, -30.5)])
def test_continuous(lib, rng, dim, target):
    s = rng.normal(size=(5, dim)) * 3
    s[0, 0] = 60.0  # clipped at log_std_min
    g = rng.normal(size=s.shape)
    k = F.continuous_offset(dim, target + 0.25, 0.0)
    out = back(F.continuous_forward(lib.ops, lib(s), k, -8.0, 0.0))
    np.testing.assert_allclose(out, era.continuous_forward(s, target, residual=0.25), rtol=1e-14, atol=1e-14)
    grad, rows = F.continuous_backward(lib.ops, lib(s), lib(g), k, -8.0, 0.0)
    want = era.continuous_backward(s, g, target, residual=0.25)
    np.testing.assert_allclose(back(grad), want.std_logits, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(back(rows), want.residual, rtol=1e-12, atol=1e-14)
    # float32 storage: libera's float32 kernel computes in double and rounds upwards
    s32 = s.astype(np.float32)
    wide = F.continuous_forward(lib.ops, lib(s32.astype(np.float64)), k, -8.0, 0.0)
    stored = back(F.round_up_to(lib.ops, wide, lib.xp.float32, 0.0))
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, era.continuous_forward(s32, target, residual=0.25))


def test_entropies(lib, rng):
    z = logits(rng, 5, 30)
    np.testing.assert_allclose(back(F.softmax_entropy(lib.ops, lib(z))), era.softmax_entropy(z), rtol=1e-13,
                               atol=1e-15)
    np.testing.assert_allclose(back(F.gaussian_entropy(lib.ops, lib(z))), era.gaussian_entropy(z), rtol=1e-14)


def llm_batch(rng, tokens=7, vocab=300):
    z = (rng.normal(size=(tokens, vocab)) * 2).astype(np.float32)
    z[0, 5:] = -np.inf  # masked tokens
    z[1] *= 30  # confident
    labels = rng.integers(0, 5, size=tokens)
    scale = np.array([1, 2, 0.5, 1, 2, 1, 0.5][:tokens], np.float32)
    return z, labels, scale


def test_llm_passes(lib, rng):
    z, labels, scale = llm_batch(rng)
    g = rng.normal(size=len(labels)).astype(np.float32)
    np.testing.assert_allclose(back(F.token_entropy(lib.ops, lib(z))), era.token_entropy(z), rtol=2e-6, atol=2e-6)
    lp, h = F.logprob_forward(lib.ops, lib(z), lib(labels), lib(scale))
    want = era.llm_logprob_forward(z, labels, scale)
    np.testing.assert_allclose(back(lp), want.logprob, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(back(h), want.entropy, rtol=2e-6, atol=2e-6)
    grad = back(F.logprob_backward(lib.ops, lib(z), lib(labels), lib(scale), lib(g)))
    np.testing.assert_allclose(grad, era.llm_logprob_backward(z, labels, scale, g), rtol=2e-6, atol=2e-7)
    assert np.all(back(F.llm_faults(lib.ops, lib(z), lib(labels), lib(scale))) == 0)


def test_llm_faults_are_libera_statuses(lib, rng):
    z, labels, scale = llm_batch(rng, tokens=6)
    z[2, 1] = np.nan
    labels[3] = 400  # out of range
    labels[4] = 7
    z[4, 7] = -np.inf  # label on a mask
    scale[5] = 0.0
    faults = back(F.llm_faults(lib.ops, lib(z), lib(labels), lib(scale)))
    status = {name: era._era.STATUS[name] for name in ("NON_FINITE", "BAD_INDEX", "BAD_PARAMETER")}
    assert faults.tolist() == [0, 0, status["NON_FINITE"], status["BAD_INDEX"], status["BAD_INDEX"],
                               status["BAD_PARAMETER"]]
    expected = ((2, era.NonFiniteError), (3, era.BadIndexError), (4, era.BadIndexError), (5, era.BadParameterError))
    for row, cls in expected:
        with pytest.raises(cls):  # libera refuses each row with the same status
            era.llm_logprob_forward(z[row:row + 1], labels[row:row + 1], scale[row:row + 1])


def test_response_entropy_and_scales(lib, rng):
    tokens = 40
    h = (rng.random(tokens) * 4).astype(np.float32)
    ids = rng.integers(-1, 5, size=tokens)
    ids[ids == 3] = -1  # response 3 is empty
    got = back(F.response_entropy(lib.ops, lib(h.astype(np.float64)), lib(ids), 5, 0.2)).astype(np.float32)
    want = era.llm_response_entropy(h, ids, 5)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[3])
    resp = np.array([0.2, 1.0, 4.0, 0.1, 0.45], np.float32)  # the last exactly at omega_low: scale 1
    adv = rng.normal(size=tokens).astype(np.float32)
    scale, new = F.scales(lib.ops, lib(resp), lib(ids), lib(adv), 0.45, 3.0, 2.0, True)
    want = era.llm_scales(resp, ids, adv)
    np.testing.assert_array_equal(back(scale), want.logit_scale)
    np.testing.assert_array_equal(back(new), want.advantages)


@pytest.mark.parametrize("top_k", [1, 3, 20, 299, 300])
def test_topk_passes(lib, rng, top_k):
    """The top-k formulas select exactly libera's entries (ties: the lower index) on rows full
    of ties, masks and fewer finite logits than k, and agree with its values."""
    z, labels, scale = llm_batch(rng)
    z[3] = np.round(z[3])  # many ties, also at the k-th value
    z[4, 7:] = -np.inf  # seven finite logits
    labels[4] = 2
    g = rng.normal(size=len(labels)).astype(np.float32)
    lp, h = F.topk_logprob_forward(lib.ops, lib(z), lib(labels), lib(scale), top_k)
    want = era.llm_logprob_forward(z, labels, scale, top_k=top_k)
    np.testing.assert_allclose(back(lp), want.logprob, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(back(h), want.entropy, rtol=2e-6, atol=2e-6)
    grad = back(F.topk_logprob_backward(lib.ops, lib(z), lib(labels), lib(scale), lib(g), top_k))
    libera = era.llm_logprob_backward(z, labels, scale, g, top_k=top_k)
    # the same selection, entry for entry (entries that underflow float32 in one of them aside)
    np.testing.assert_array_equal(np.abs(grad) > 1e-30, np.abs(libera) > 1e-30)
    np.testing.assert_allclose(grad, libera, rtol=2e-6, atol=2e-7)


def test_truncated_normal(lib, rng):
    """The truncated-normal policy's sample, log-density and their gradients, policy-like
    values (loc = tanh(mean) inside [-1, 1], log stds from -6 to 1, uniforms over (0, 1))
    and moderate tails (the device path keeps to 1e-16 * alpha^2, docs/math.md)."""
    n = 200
    loc = np.tanh(rng.normal(size=n) * 1.5)
    log_std = rng.uniform(-6, 1, size=n)
    u = rng.uniform(1e-9, 1 - 1e-9, size=n)
    g = rng.normal(size=n)
    x = era.truncated_normal_sample(loc, log_std, u)
    np.testing.assert_allclose(back(F.truncated_normal_sample(lib.ops, lib(loc), lib(log_std), lib(u), -1.0, 1.0)),
                               x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(back(F.truncated_normal_log_prob(lib.ops, lib(loc), lib(log_std), lib(x), -1.0,
                                                                1.0)),
                               era.truncated_normal_log_prob(loc, log_std, x), rtol=1e-10, atol=1e-10)
    want = era.truncated_normal_log_prob_backward(loc, log_std, x, g)
    got = F.truncated_normal_log_prob_backward(lib.ops, lib(loc), lib(log_std), lib(x), lib(g), -1.0, 1.0)
    for a, b in zip(got, (want.x, want.loc, want.log_std)):
        np.testing.assert_allclose(back(a), b, rtol=1e-8, atol=1e-8)
    want = era.truncated_normal_sample_backward(loc, log_std, x, g)
    got = F.truncated_normal_sample_backward(lib.ops, lib(loc), lib(log_std), lib(x), lib(g), -1.0, 1.0)
    for a, b in zip(got, (want.loc, want.log_std)):
        np.testing.assert_allclose(back(a), b, rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------------------------------
# The truncated-normal entropy, its gradient and the sampled floor (the torch device path)


def truncated_inputs(rng):
    """Locations and log stds over the regimes: the bulk, locations far outside the interval
    (one tail, the far tail beyond 1e8 sd), scales from e^-20 to e^12 (narrow intervals)."""
    m = np.concatenate([np.tanh(rng.normal(size=300) * 2), rng.normal(size=200) * 30,
                        [1e9, -1e9, 1e3, -1e3, 1.0, -1.0, 0.999999, 40.0, -60.0]])
    ls = np.concatenate([rng.normal(size=300) * 2, rng.uniform(-20, 12, size=200), [0, 3, -20, -30, 5, -1, -12, 0.5, 1]])
    return m, ls


@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (0.0, 1.0), (5.0, 6.0), (-1e-8, 1e-8), (-2.0, 3.0)])
def test_truncated_normal_entropy_and_gradient(lib, rng, lo, hi):
    m, ls = truncated_inputs(rng)
    h, dm, dl = (back(v) for v in F.truncated_normal_parts(lib.ops, lib(m), lib(ls), lo, hi))
    want = era.truncated_normal_entropy(m[:, None], ls[:, None], lo, hi)
    grads = era.truncated_normal_entropy_backward(m[:, None], ls[:, None], np.ones(len(m)), lo, hi)
    # docs/math.md: 1e-13 per dimension, 2e-8 for intervals narrower than 1e-5 sd in a tail
    # (there the last bits of exp/log/expm1, which differ between libm, torch and XLA, are
    # amplified); measured here 1.3e-12 and 3.7e-8
    narrow = hi - lo < 1e-6
    np.testing.assert_allclose(h, want, rtol=1e-12, atol=5e-8 if narrow else 5e-12)
    # the derivatives, every regime (the moments of the energy where the partials would cancel)
    for got, ref in ((dm, grads.loc[:, 0]), (dl, grads.log_std[:, 0])):
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 if narrow else 1e-10)
    rows = back(F.truncated_normal_entropy(lib.ops, lib(m.reshape(-1, 1)), lib(ls.reshape(-1, 1)), lo, hi))
    np.testing.assert_allclose(rows, want, rtol=1e-12, atol=5e-8 if narrow else 5e-12)


@pytest.mark.parametrize("loc, log_std, lo, hi, dloc, dlog_std", [
    # alpha = -11378, alpha*width = 0.30 (the partials of h cancelled to 7.48 for dH/dlog_std)
    (8.529376332368978, -7.195220172021088, -1e-8, 1e-8, -8.93677848181331e-4, 0.0152450293737193),
    # alpha = 25.6, width = 0.0045 sd (found by fuzzing: 1.2e-6 relative off)
    (-10000.0, 5.9648442268371582, -8.25, -6.5, 1.1073620826753456e-7, 0.0022130893181518269),
])
def test_truncated_gradient_far_tail(loc, log_std, lo, hi, dloc, dlog_std):
    """libera's truncated-normal entropy gradient far in one tail, against 60- to 80-digit
    arithmetic (mpmath derivatives of the closed form): the moments of the energy keep full
    precision where the partials of h cancelled."""
    grads = era.truncated_normal_entropy_backward([[loc]], [[log_std]], [1.0], lo, hi)
    np.testing.assert_allclose(grads.log_std[0, 0], dlog_std, rtol=1e-13)
    np.testing.assert_allclose(grads.loc[0, 0], dloc, rtol=1e-13)


SUP6 = 6 * math.log(2.0)  # D log(hi - lo) for D = 6 on [-1, 1]


@pytest.mark.parametrize("target", [-6.0, -3.0, 0.0, SUP6 - 1e-3, SUP6 - 1e-9, SUP6 - 1e-12])
def test_sampled_floor(lib, rng, target):
    d = 6
    s = rng.normal(size=(40, d)) * 3
    m = np.tanh(rng.normal(size=(40, d)) * 2)
    m[0] = 0.9999  # locations on a bound
    m[1] = 3.0  # outside the interval
    g = rng.normal(size=s.shape)
    k = F.continuous_offset(d, target, 0.0)
    out, c, infeasible = (back(v) for v in F.sampled_floor_forward(lib.ops, lib(s), lib(m), k, target, -1.0, 1.0,
                                                                   -8.0, 0.0))
    want, offset = era.continuous_truncated_forward(s, m, target, return_offset=True)
    assert not infeasible.any()
    # the floor and the minimal offset, in entropy: within 2e-12 (1 + |target|) above the target
    h = era.truncated_normal_entropy(m, out)
    # held as the formulas evaluate the entropy, which agrees with libera's to about 1e-13 a
    # dimension (XLA's fused sums differ from numpy's in the last bits)
    assert np.all(h >= target - 1e-12 * (1 + abs(target)))
    # minimal to 2e-12 (1 + |target|), except within 1e-10 of the supremum: there the scales reach
    # e^15 and the entropy itself is only known to about 1e-11 a row (the narrow-interval
    # regime), which bounds how close to the target any offset can be shown to land
    minimal = 2e-12 if target < SUP6 - 1e-10 else 1e-10
    assert np.all((c == 0) | (h - target <= minimal * (1 + abs(target))))
    np.testing.assert_array_equal(c == 0, offset == 0)
    np.testing.assert_allclose(out[c == 0], want[offset == 0], rtol=0, atol=1e-13)  # the continuous output
    if target <= 0:  # away from saturation c is well conditioned
        np.testing.assert_allclose(out, want, rtol=0, atol=1e-10)
        gs, gm, gr = (back(v) for v in F.sampled_floor_backward(lib.ops, lib(s), lib(m), lib(g), k, target, -1.0,
                                                                  1.0, -8.0, 0.0))
        grads = era.continuous_truncated_backward(s, m, g, target)
        for got, ref in ((gs, grads.std_logits), (gm, grads.loc), (gr, grads.residual)):
            np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())


def test_sampled_floor_float32_and_infeasible_rows(lib, rng):
    d = 4
    s = (rng.normal(size=(30, d)) * 3).astype(np.float32)
    m = np.tanh(rng.normal(size=(30, d)) * 2).astype(np.float32)
    target = -1.0
    k = F.continuous_offset(d, target, 0.0)
    out, c, _ = F.sampled_floor_forward(lib.ops, lib(s.astype(np.float64)), lib(m.astype(np.float64)), k, target,
                                        -1.0, 1.0, -8.0, 0.0, dtype=lib.xp.float32)
    out = back(out).astype(np.float32)
    want = era.continuous_truncated_forward(s, m, target)
    np.testing.assert_allclose(out, want, rtol=0, atol=4e-6)
    assert era.check_continuous_truncated(m, out, target, tol=0.0).violations == 0  # the stored values hold it
    # a location 1e300 outside the interval: no offset reaches the target in double (libera: infeasible)
    far = np.zeros((2, d))
    far[1, 0] = 1e300
    _, c, infeasible = (back(v) for v in F.sampled_floor_forward(lib.ops, lib(np.zeros((2, d))), lib(far), k,
                                                                 4 * math.log(2.0) - 1e-3, -1.0, 1.0, -8.0, 0.0))
    assert list(infeasible) == [False, True] and np.isnan(c[1])
    with pytest.raises(era.InfeasibleTargetError):
        era.continuous_truncated_forward(np.zeros((2, d)), far, 4 * math.log(2.0) - 1e-3)


# ---------------------------------------------------------------------------------------
# The tanh-Gaussian entropy, its gradient and the tanh sampled floor (the device paths)


def test_tanh_gaussian_entropy_and_gradient(lib, rng):
    """Both quadrature regimes (std <= 0.5 and above, the switch itself), means to 300."""
    m = np.concatenate([rng.normal(size=300) * 2, rng.normal(size=100) * 100, [0.0, 0.0, 3.0, -3.0, 1e3]])
    ls = np.concatenate([rng.uniform(-10, 6, size=300), rng.uniform(-3, 8, size=100),
                         [np.log(0.5), np.log(0.5) + 1e-12, 0.0, -20.0, 2.0]])
    h, dm, dl = (back(v) for v in F.tanh_gaussian_parts(lib.ops, lib(m), lib(ls)))
    want = era.tanh_gaussian_entropy(m[:, None], ls[:, None])
    grads = era.tanh_gaussian_entropy_backward(m[:, None], ls[:, None], np.ones(len(m)))
    # measured: 2e-15 relative (|H| up to 2e3 at mean 1e3)
    np.testing.assert_allclose(h, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dm, grads.mean[:, 0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dl, grads.log_std[:, 0], rtol=1e-12, atol=1e-13)
    rows = back(F.tanh_gaussian_entropy(lib.ops, lib(m.reshape(-1, 5)), lib(ls.reshape(-1, 5))))
    np.testing.assert_allclose(rows, era.tanh_gaussian_entropy(m.reshape(-1, 5), ls.reshape(-1, 5)), rtol=1e-13,
                               atol=1e-12)


@pytest.mark.parametrize("target, log_std_min, mean_scale", [(-2.0, -20.0, 0.5), (1.3, -0.1, 0.3)])
def test_tanh_floor(lib, rng, target, log_std_min, mean_scale):
    """Rows with c > 0, c < 0 (stds beyond the peak: the last case), c = 0 and infeasible rows,
    held to libera row by row; float64, and float32 storage."""
    d = 3
    s = rng.normal(size=(16, d)) * 0.5
    m = rng.normal(size=(16, d)) * mean_scale
    s[0] = 0.0
    m[1] = 5.0  # a row whose peak lies far below any of the targets
    kw = dict(residual=0.0, log_std_min=log_std_min, log_std_max=2.0)
    k = F.continuous_offset(d, target, 2.0)
    out, c, infeasible = (back(v) for v in F.tanh_floor_forward(lib.ops, lib(s), lib(m), k, target, log_std_min,
                                                                 2.0))
    g = rng.normal(size=s.shape)
    gs, gm, gr = (back(v) for v in F.tanh_floor_backward(lib.ops, lib(s), lib(m), lib(g), k, target, log_std_min,
                                                         2.0))
    assert infeasible[1]
    for r in range(len(s)):
        try:
            want, offset = era.continuous_tanh_forward(s[r:r + 1], m[r:r + 1], target, return_offset=True, **kw)
        except era.InfeasibleTargetError:
            assert infeasible[r] and np.isnan(c[r])
            continue
        assert not infeasible[r] and (c[r] == 0) == (offset[0] == 0)
        np.testing.assert_allclose(c[r], offset[0], rtol=0, atol=1e-10 * (1 + abs(offset[0])))
        np.testing.assert_allclose(out[r], want[0], rtol=0, atol=1e-11)
        grads = era.continuous_tanh_backward(s[r:r + 1], m[r:r + 1], g[r:r + 1], target, **kw)
        for got, ref in ((gs[r], grads.std_logits[0]), (gm[r], grads.mean[0]), (gr[r], grads.residual[0])):
            np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10 * (1 + np.abs(ref).max()))
    assert (c[~infeasible] != 0).any() and ((c[~infeasible] < 0).any() == (target > 0))
    # float32 storage: the entropy at the stored values
    out32, c32, _ = F.tanh_floor_forward(lib.ops, lib(s.astype(np.float32).astype(np.float64)),
                                         lib(m.astype(np.float32).astype(np.float64)), k, target, log_std_min, 2.0,
                                         dtype=lib.xp.float32)
    out32 = back(out32).astype(np.float32)
    ok = ~infeasible
    report = era.check_continuous_tanh(m[ok].astype(np.float32), out32[ok], target, tol=0.0, **kw)
    assert report.violations == 0
