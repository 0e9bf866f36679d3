"""Errors, untouched outputs, dtypes, layouts, batch shapes, empty batches, threads, the GIL."""

import math
import threading
import time

import numpy as np
import pytest

import era
from era import _era
from era._errors import error_for_status

STATUS = _era.STATUS


# ---------------------------------------------------------------------------------------
# One exception class per status


@pytest.mark.parametrize(
    "name, cls",
    [
        ("NULL_POINTER", era.NullPointerError),
        ("BAD_SHAPE", era.BadShapeError),
        ("BAD_PARAMETER", era.BadParameterError),
        ("INFEASIBLE_TARGET", era.InfeasibleTargetError),
        ("NON_FINITE", era.NonFiniteError),
        ("ALLOCATION", era.AllocationError),
        ("INTERNAL", era.InternalError),
        ("BAD_INDEX", era.BadIndexError),
        ("OVERLAP", era.OverlapError),
    ],
)
def test_status_maps_to_its_class(name, cls):
    error = error_for_status(STATUS[name], "era.somewhere", "context here")
    assert type(error) is cls and isinstance(error, era.ERAError) and isinstance(error, ValueError)
    assert error.status == STATUS[name]
    assert str(error) == f"{_era.status_string(STATUS[name])}: era.somewhere (context here)"
    assert error.status_string == _era.status_string(STATUS[name])


def test_library_status_texts():
    assert _era.status_string(STATUS["NON_FINITE"]) == "non-finite input"
    assert _era.status_string(STATUS["BAD_INDEX"]) == "index out of range"
    assert _era.status_string(STATUS["OVERLAP"]) == "overlapping buffers"
    assert _era.status_string(1234) == "unknown status"


def test_null_pointer_reaches_the_library():
    # Only era._era can pass NULL: None for a required array.
    out = np.zeros(2)
    assert _era.softmax_entropy(2, 3, np.zeros(6), None) == STATUS["NULL_POINTER"]
    assert _era.continuous_forward(-1.0, 0.0, -8.0, 0.0, 2, 3, np.zeros(6), None) == STATUS["NULL_POINTER"]
    assert _era.softmax_entropy(0, 3, np.zeros(0), None) == STATUS["OK"]  # NULL is fine for zero rows
    assert np.all(out == 0)


def test_overlapping_buffers_reach_the_library_as_overlap():
    # Only era._era can pass an output that overlaps an input: views of one buffer.
    buffer = np.random.default_rng(3).normal(size=16)
    before = buffer.copy()
    # softmax entropies of 2 rows of 4 written over the logits' second half: refused, untouched
    assert _era.softmax_entropy(2, 4, buffer[:8], buffer[6:8]) == STATUS["OVERLAP"]
    assert _era.continuous_forward(-1.0, 0.0, -8.0, 0.0, 2, 3, buffer[:6], buffer[1:7]) == STATUS["OVERLAP"]
    assert np.array_equal(buffer, before)
    # the exact in-place form still works and equals the out-of-place result
    out = np.empty(6)
    assert _era.continuous_forward(-1.0, 0.0, -8.0, 0.0, 2, 3, buffer[:6], out) == STATUS["OK"]
    assert _era.continuous_forward(-1.0, 0.0, -8.0, 0.0, 2, 3, buffer[:6], buffer[:6]) == STATUS["OK"]
    assert np.array_equal(buffer[:6], out)
    assert type(error_for_status(STATUS["OVERLAP"], "era._era.softmax_entropy")) is era.OverlapError


X = np.random.default_rng(7).normal(size=(4, 5))


@pytest.mark.parametrize(
    "call, cls, text",
    [
        (lambda: era.softmax_entropy(np.zeros((3, 0))), era.BadShapeError, "bad shape"),
        (lambda: era.discrete_forward(np.zeros((3, 1)), 0.5), era.BadShapeError, "bad shape"),
        (lambda: era.softmax_entropy(np.float64(1.0)), era.BadShapeError, "scalar"),
        (lambda: era.tanh_gaussian_entropy(np.zeros((2, 3)), np.zeros((3, 2))), era.BadShapeError, "shape"),
        (lambda: era.discrete_forward(X, 1.0, tau=2.0), era.BadParameterError, "tau=2.0"),
        (lambda: era.discrete_forward(X, math.nan), era.BadParameterError, "bad parameter"),
        (lambda: era.discrete_forward(X, 1.0, mode="greedy"), era.BadParameterError, "greedy"),
        (lambda: era.discrete_forward(X, 10.0), era.InfeasibleTargetError, "infeasible target entropy"),
        (lambda: era.discrete_forward(X, 5.0, mode="tight"), era.InfeasibleTargetError, "mode='tight'"),
        (lambda: era.continuous_forward(X, 10.0), era.InfeasibleTargetError, "target_entropy=10.0"),
        (lambda: era.continuous_forward(X, -3.0, residual=-0.1), era.BadParameterError, "residual=-0.1"),
        (lambda: era.continuous_forward(X, -3.0, log_std_min=0.0), era.BadParameterError, "bad parameter"),
        (lambda: era.truncated_normal_entropy(X, X, 1.0, -1.0), era.BadParameterError, "lo=1.0"),
        (lambda: era.gaussian_entropy(np.array([[0.0, np.inf]])), era.NonFiniteError, "non-finite input"),
        (lambda: era.check_discrete(X, 1.0, tol=-1.0), era.BadParameterError, "tol=-1.0"),
        (lambda: era.check_continuous(X - 3, -3.0, tol=math.nan), era.BadParameterError, "bad parameter"),
        (lambda: era.set_num_threads(-1), era.BadParameterError, "n=-1"),
        (lambda: era.set_num_threads(1025), era.BadParameterError, "n=1025"),
        (lambda: era.llm_scales(np.ones(1, np.float32), np.array([3], np.int64), np.ones(1, np.float32)),
         era.BadIndexError, "index out of range"),
    ],
)
def test_bad_input_raises_its_class_with_the_library_message(call, cls, text):
    with pytest.raises(cls, match=text.replace("(", r"\(").replace(")", r"\)")) as info:
        call()
    assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------------------------------
# Nothing written on error: preallocated outputs (the binding level) keep their contents


def sentinel(shape, dtype=np.float64):
    return np.full(shape, 12345.0, dtype)


def last_row_nan(shape):
    x = np.random.default_rng(3).normal(size=shape)
    x[-1, -1] = np.nan
    return x


@pytest.mark.parametrize(
    "name, run, outs",
    [
        ("softmax_entropy", lambda x, o: _era.softmax_entropy(4, 5, x, o[0]), [(4,)]),
        ("gaussian_entropy", lambda x, o: _era.gaussian_entropy(4, 5, x, o[0]), [(4,)]),
        ("tanh_gaussian_entropy", lambda x, o: _era.tanh_gaussian_entropy(4, 5, np.zeros((4, 5)), x, o[0]), [(4,)]),
        ("truncated_normal_entropy",
         lambda x, o: _era.truncated_normal_entropy(4, 5, np.zeros((4, 5)), x, -1.0, 1.0, o[0]), [(4,)]),
        ("continuous_forward", lambda x, o: _era.continuous_forward(-2.0, 0.0, -8.0, 0.0, 4, 5, x, o[0]), [(4, 5)]),
        ("continuous_backward",
         lambda x, o: _era.continuous_backward(-2.0, 0.0, -8.0, 0.0, 4, 5, x, np.ones((4, 5)), o[0], o[1]),
         [(4, 5), (4,)]),
        ("discrete_forward", lambda x, o: _era.discrete_forward(1.0, 4.0, 0, 4, 5, x, o[0]), [(4, 5)]),
        ("discrete_backward",
         lambda x, o: _era.discrete_backward(1.0, 4.0, 0, 4, 5, x, np.ones((4, 5)), o[0]), [(4, 5)]),
        ("token_entropy", lambda x, o: _era.token_entropy(4, 5, x, o[0]), [(4,)]),
    ],
)
def test_outputs_untouched_on_error(name, run, outs):
    x = last_row_nan((4, 5))
    before = x.copy()
    out_arrays = [sentinel(shape) for shape in outs]
    status = run(x, out_arrays)
    assert status == STATUS["NON_FINITE"], name
    for out in out_arrays:
        assert np.all(out == 12345.0), name
    np.testing.assert_array_equal(x, before)  # inputs are never written


def test_llm_outputs_untouched_on_error():
    z = np.random.default_rng(4).normal(size=(3, 4)).astype(np.float32)
    labels = np.array([0, 1, 7], np.int64)  # the last label is out of range
    lp, h = sentinel(3, np.float32), sentinel(3, np.float32)
    assert _era.llm_logprob_forward(3, 4, z, labels, None, lp, h) == STATUS["BAD_INDEX"]
    grad = sentinel((3, 4), np.float32)
    assert _era.llm_logprob_backward(3, 4, z, labels, None, np.ones(3, np.float32), grad) == STATUS["BAD_INDEX"]
    resp = sentinel(2, np.float32)
    ids = np.array([0, 1, 2], np.int64)
    assert _era.llm_response_entropy(0.45, 3.0, 2.0, 0.2, True, 3, np.ones(3, np.float32), ids, 2, resp) == 8
    s, a = sentinel(3, np.float32), sentinel(3, np.float32)
    assert _era.llm_scales(0.45, 3.0, 2.0, 0.2, True, 3, np.ones(2, np.float32), 2, ids, np.ones(3, np.float32), s, a) == 8
    for out in (lp, h, grad, resp, s, a):
        assert np.all(out == 12345.0)


def test_check_reports_nothing_on_error():
    status, report = _era.check_discrete(1.0, 4.0, 0, 4, 5, last_row_nan((4, 5)), 1e-9)
    assert status == STATUS["NON_FINITE"] and report is None


def test_binding_refuses_arrays_that_do_not_fit():
    # Wrong sizes, dtypes or layouts never reach the library (no out-of-bounds access).
    with pytest.raises(ValueError, match="elements"):
        _era.softmax_entropy(4, 5, np.zeros(19), np.zeros(4))
    with pytest.raises(ValueError, match="elements"):
        _era.softmax_entropy(4, 5, np.zeros(20), np.zeros(3))
    with pytest.raises(TypeError, match="dtype"):
        _era.softmax_entropy(4, 5, np.zeros(20), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _era.softmax_entropy(4, 5, np.zeros((5, 4)).T, np.zeros(4))
    out = np.zeros(4)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _era.softmax_entropy(4, 5, np.zeros(20), out)
    with pytest.raises(TypeError):
        _era.softmax_entropy(4, 5, [0.0] * 20, np.zeros(4))


# ---------------------------------------------------------------------------------------
# dtypes: no silent casts


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex128, np.dtype(">f8")])
def test_wrong_dtype_raises(dtype):
    x = np.ones((2, 3)).astype(dtype)
    with pytest.raises(era.DTypeError) as info:
        era.softmax_entropy(x)
    assert isinstance(info.value, TypeError) and isinstance(info.value, era.ERAError)


def test_mixed_dtypes_raise():
    with pytest.raises(era.DTypeError, match="float32"):
        era.discrete_backward(np.ones((2, 3)), np.ones((2, 3), np.float32), 0.9)
    with pytest.raises(era.DTypeError):
        era.tanh_gaussian_entropy(np.ones((2, 3), np.float32), np.ones((2, 3)))


def test_python_lists_are_float64():
    assert era.softmax_entropy([0.0, 0.0]).dtype == np.float64
    with pytest.raises(era.DTypeError):
        era.softmax_entropy([0, 0])  # integers are not cast


# ---------------------------------------------------------------------------------------
# Layouts, batch shapes, empty batches


def test_non_contiguous_inputs_give_the_same_results(rng):
    base = rng.normal(size=(6, 8))
    views = [base.T, base[::2], base[:, ::2], np.asfortranarray(base)]
    for view in views:
        before = view.copy()
        np.testing.assert_array_equal(era.softmax_entropy(view), era.softmax_entropy(np.ascontiguousarray(view)))
        np.testing.assert_array_equal(era.discrete_forward(view, 1.0), era.discrete_forward(view.copy(), 1.0))
        g = np.ones_like(view)[::-1]
        np.testing.assert_array_equal(era.continuous_backward(view, g, -3.0).std_logits,
                                      era.continuous_backward(view.copy(), g.copy(), -3.0).std_logits)
        np.testing.assert_array_equal(view, before)


def test_contiguous_input_is_not_copied(rng):
    from era._arrays import rows_of

    x = rng.normal(size=(3, 4))
    assert rows_of(x, "t", "x").array is x
    assert rows_of(x.T, "t", "x").array is not x


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5), (2, 1, 3, 5)])
def test_leading_batch_shapes(rng, shape):
    x = rng.normal(size=shape)
    flat = x.reshape(-1, 5)
    assert era.softmax_entropy(x).shape == shape[:-1]
    np.testing.assert_array_equal(era.softmax_entropy(x).reshape(-1), era.softmax_entropy(flat))
    np.testing.assert_array_equal(era.discrete_forward(x, 1.0).reshape(-1, 5), era.discrete_forward(flat, 1.0))
    lp = era.llm_logprob_forward(x.astype(np.float32), np.zeros(shape[:-1], np.int64))
    assert lp.logprob.shape == shape[:-1]
    report = era.check_discrete(era.discrete_forward(x, 1.0), 1.0)
    assert report.rows == flat.shape[0] and report.batch_shape == shape[:-1]


def test_empty_batches():
    empty = np.zeros((0, 4))
    assert era.softmax_entropy(empty).shape == (0,)
    assert era.softmax_entropy(np.zeros((2, 0, 4))).shape == (2, 0)
    assert era.discrete_forward(empty, 1.0).shape == (0, 4)
    assert era.continuous_forward(empty, -3.0).shape == (0, 4)
    grads = era.continuous_backward(empty, empty, -3.0)
    assert grads.std_logits.shape == (0, 4) and grads.residual.shape == (0,)
    assert era.token_entropy(empty.astype(np.float32)).shape == (0,)
    assert era.llm_response_entropy(np.zeros(0, np.float32), np.zeros(0, np.int64), 2).shape == (2,)
    report = era.check_discrete(empty, 1.0)
    assert (report.rows, report.violations, report.worst_row) == (0, 0, -1)
    assert report.min_entropy == math.inf and math.isnan(report.mean_entropy)
    assert report.holds and report.worst_index is None
    # The parameters are still checked on an empty batch.
    with pytest.raises(era.InfeasibleTargetError):
        era.discrete_forward(empty, 10.0)


# ---------------------------------------------------------------------------------------
# Threads and the GIL


def test_thread_setting_round_trip_and_identical_results(rng):
    x = rng.normal(size=(4000, 64))
    original = era.get_num_threads()
    try:
        era.set_num_threads(1)
        assert era.get_num_threads() == 1
        one = era.discrete_forward(x, 1.5)
        era.set_num_threads(3)
        assert era.get_num_threads() == 3
        np.testing.assert_array_equal(era.discrete_forward(x, 1.5), one)
        era.set_num_threads(0)
        assert era.get_num_threads() >= 1
    finally:
        era.set_num_threads(original)


def test_kernels_release_the_gil(rng):
    # While one thread is inside a long libera call, another Python thread keeps running.
    x = rng.normal(size=(50, 1000)) * 0.5
    mean = np.zeros_like(x)
    era.set_num_threads(1)
    try:
        start = time.perf_counter()
        era.tanh_gaussian_entropy(mean, x)
        single = time.perf_counter() - start
        window = {}
        ticks = []

        def work():
            window["start"] = time.perf_counter()
            era.tanh_gaussian_entropy(mean, x)
            window["end"] = time.perf_counter()

        worker = threading.Thread(target=work)
        worker.start()
        while worker.is_alive():
            ticks.append(time.perf_counter())
        worker.join()
    finally:
        era.set_num_threads(0)
    assert single > 0.05, "the call is too short to observe"
    lo, hi = window["start"] + 0.2 * single, window["end"] - 0.2 * single
    inside = [t for t in ticks if lo < t < hi]
    assert len(inside) > 100
