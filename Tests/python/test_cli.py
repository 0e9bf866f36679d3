"""era.testing.assert_entropy_bound and `python -m era verify` (exit codes 0/1/2)."""

import io
import json
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import era
import era.testing


@pytest.fixture
def outputs(rng):
    z = rng.normal(size=(4, 3, 6)) * 3
    return era.discrete_forward(z, 1.0), z


def test_assert_entropy_bound_passes_on_era_outputs(outputs, rng):
    good, _ = outputs
    report = era.testing.assert_entropy_bound(good, kind="discrete", target_entropy=1.0)
    assert report.holds
    log_std = era.continuous_forward(rng.normal(size=(5, 2)), -1.0, residual=0.1)
    assert era.testing.assert_entropy_bound(log_std, kind="continuous", target_entropy=-1.0, residual=0.1).holds


def test_assert_entropy_bound_names_the_violating_rows(outputs):
    _, raw = outputs
    raw = raw.copy()
    raw[2, 1] *= 50
    raw[0, 2] *= 50
    h = era.softmax_entropy(raw)
    with pytest.raises(AssertionError) as info:
        era.testing.assert_entropy_bound(raw, kind="discrete", target_entropy=1.0, max_rows_shown=2)
    message = str(info.value)
    bad = np.argwhere(h < 1.0 - 1e-10)
    worst = np.unravel_index(np.argmin(h), h.shape)
    assert f"{len(bad)} of 12 rows below target 1" in message
    assert f"worst deficit {1.0 - h.min():.6g} nats at row ({worst[0]}, {worst[1]})" in message
    first = bad[0]
    assert f"({first[0]}, {first[1]}): {h[tuple(first)]:.6g}" in message
    if len(bad) > 2:
        assert f"(first 2 of {len(bad)})" in message


def test_assert_entropy_bound_continuous_squashed_violation(rng):
    log_std = np.full((3, 2), -0.1)
    mean = np.array([[0.0, 0.0], [3.0, 3.0], [0.0, 0.0]])
    with pytest.raises(AssertionError, match=r"tanh-squashed entropy[\s\S]*\(1,\)"):
        era.testing.assert_entropy_bound(log_std, kind="continuous", target_entropy=0.0, mean=mean)


def test_assert_entropy_bound_bad_input_is_an_era_error(outputs):
    good, _ = outputs
    with pytest.raises(era.InfeasibleTargetError):
        era.testing.assert_entropy_bound(good, kind="discrete", target_entropy=50.0)
    with pytest.raises(ValueError, match="kind"):
        era.testing.assert_entropy_bound(good, kind="gaussian", target_entropy=1.0)


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "era", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_exit_codes(tmp_path, outputs):
    good, raw = outputs
    np.savez(tmp_path / "good.npz", logits=good)
    np.savez(tmp_path / "bad.npz", logits=raw * 20, other=good)
    np.save(tmp_path / "single.npy", good)

    ok = run_cli("verify", "good.npz", "--kind", "discrete", "--target-entropy", "1.0", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "bound holds" in ok.stdout and "rows          12" in ok.stdout

    bad = run_cli("verify", "bad.npz", "--kind", "discrete", "--target-entropy", "1.0", cwd=tmp_path)
    assert bad.returncode == 1
    assert "BOUND VIOLATED" in bad.stdout and "violating rows" in bad.stdout and "worst deficit" in bad.stdout

    npy = run_cli("verify", "single.npy", "--kind", "discrete", "--target-entropy", "1.0", cwd=tmp_path)
    assert npy.returncode == 0, npy.stderr

    as_json = run_cli("verify", "bad.npz", "--key", "other", "--kind", "discrete", "--target-entropy", "1.0", "--json",
                      cwd=tmp_path)
    assert as_json.returncode == 0
    data = json.loads(as_json.stdout)
    assert data["holds"] is True and data["rows"] == 12 and data["key"] == "other" and data["violating_rows"] == []

    bad_json = run_cli("verify", "bad.npz", "--kind", "discrete", "--target-entropy", "1.0", "--json", cwd=tmp_path)
    data = json.loads(bad_json.stdout)
    assert bad_json.returncode == 1 and data["violations"] > 0 and data["violating_rows"][0]["index"]


@pytest.mark.parametrize(
    "args, text",
    [
        (["verify", "missing.npz", "--kind", "discrete", "--target-entropy", "1"], "cannot read missing.npz"),
        (["verify", "two.npz", "--kind", "discrete", "--target-entropy", "1", "--key", "nope"], "no array 'nope'"),
        (["verify", "two.npz", "--kind", "discrete", "--target-entropy", "9"], "infeasible target entropy"),
        (["verify", "two.npz", "--kind", "discrete", "--target-entropy", "1", "--tau", "2"], "bad parameter"),
        (["verify", "two.npz", "--kind", "continuous", "--target-entropy", "0", "--key", "logits",
          "--log-std-min", "1"], "bad parameter"),
        (["verify", "ints.npz", "--kind", "discrete", "--target-entropy", "1"], "dtype int64"),
        (["verify", "two.npz", "--kind", "discrete"], "--target-entropy"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path, outputs, args, text):
    good, _ = outputs
    np.savez(tmp_path / "two.npz", logits=good, other=good)
    np.savez(tmp_path / "ints.npz", logits=np.ones((2, 3), np.int64))
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert text in result.stderr
    assert result.stdout == ""


def test_cli_continuous_with_means(tmp_path, rng):
    log_std = era.continuous_forward(rng.normal(size=(4, 2)), -1.0, residual=0.5)
    np.savez(tmp_path / "policy.npz", log_std=log_std, mean=np.zeros((4, 2)))
    gaussian = run_cli("verify", "policy.npz", "--kind", "continuous", "--target-entropy", "-1", "--residual", "0.5",
                       cwd=tmp_path)
    assert gaussian.returncode == 0, gaussian.stdout + gaussian.stderr
    squashed = run_cli("verify", "policy.npz", "--kind", "continuous", "--target-entropy", "-1", "--mean-key", "mean",
                       "--json", cwd=tmp_path)
    report = era.check_continuous(log_std, -1.0, mean=np.zeros((4, 2)))
    assert squashed.returncode == (0 if report.holds else 1)
    assert json.loads(squashed.stdout)["min_entropy"] == pytest.approx(report.min_entropy)


# ---------------------------------------------------------------------------------------
# Unreadable files and bad options: exit 2 with one line on stderr, never a traceback


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return bytearray(buffer.getvalue())


def claim_shape(member, shape):
    """An .npy file whose header claims `shape` (same header length), data unchanged."""
    length = int.from_bytes(member[8:10], "little")
    header = member[10:10 + length].decode("latin1")
    start, end = header.index("'shape': ") + len("'shape': "), header.index(")") + 1
    claimed = (header[:start] + repr(tuple(shape)) + header[end:]).rstrip()
    claimed += " " * (length - len(claimed) - 1) + "\n"
    assert len(claimed) == length
    member[10:10 + length] = claimed.encode("latin1")
    return member


def damage_deflate(path):
    """Flips bytes in the middle of the first member's deflate stream; the zip headers and
    the stored CRC stay as they were, so that the error comes from zlib while reading."""
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    assert info.compress_type == zipfile.ZIP_DEFLATED
    raw = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
    raw[start:start + 16] = bytes(b ^ 0xFF for b in raw[start:start + 16])
    path.write_bytes(bytes(raw))


TIB_36 = (824633720832, 6)  # float64: 36 TiB


@pytest.fixture
def bad_files(tmp_path, outputs):
    good, raw = outputs
    # values with repeats, so that the stream holds back-references a flipped byte breaks
    np.savez_compressed(tmp_path / "deflate.npz", logits=np.round(np.random.default_rng(5).normal(size=(40, 50)), 1))
    damage_deflate(tmp_path / "deflate.npz")
    with zipfile.ZipFile(tmp_path / "huge.npz", "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("logits.npy", bytes(claim_shape(npy_bytes(good), TIB_36)))
    (tmp_path / "huge.npy").write_bytes(bytes(claim_shape(npy_bytes(good), TIB_36)))
    (tmp_path / "negative.npy").write_bytes(bytes(claim_shape(npy_bytes(good), (-1, 6))))
    (tmp_path / "truncated.npy").write_bytes(bytes(npy_bytes(good)[:-8]))
    with zipfile.ZipFile(tmp_path / "crc.npz", "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("logits.npy", bytes(npy_bytes(good)))
    data = bytearray((tmp_path / "crc.npz").read_bytes())
    data[200] ^= 0x01  # inside the stored member's data: a CRC mismatch at its end
    (tmp_path / "crc.npz").write_bytes(bytes(data))
    for name, offset, value in (("encrypted.npz", 6, 1), ("method.npz", 8, 99)):  # flag bit 0; method 99
        with zipfile.ZipFile(tmp_path / name, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("logits.npy", bytes(npy_bytes(good)))
        data = bytearray((tmp_path / name).read_bytes())
        central = data.index(b"PK\x01\x02")  # the central directory's field sits 2 bytes later
        for at in (offset, central + offset + 2):
            data[at:at + 2] = struct.pack("<H", struct.unpack("<H", data[at:at + 2])[0] | value)
        (tmp_path / name).write_bytes(bytes(data))
    np.savez(tmp_path / "object.npz", logits=np.array([[1.0, None]], dtype=object))
    np.save(tmp_path / "object.npy", np.array([[1.0, None]], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "text.npz", "w") as archive:
        archive.writestr("logits", "not an array")
    (tmp_path / "text.npy").write_text("not an array")
    np.savez(tmp_path / "violated.npz", logits=raw * 20)
    return tmp_path


VERIFY = ["verify", "--kind", "discrete", "--target-entropy", "1"]


@pytest.mark.parametrize(
    "file, extra, text",
    [
        ("deflate.npz", [], "damaged compressed data"),
        ("huge.npz", [], "claims shape (824633720832, 6) of float64 (36.0 TiB)"),
        ("huge.npy", [], "claims shape (824633720832, 6) of float64 (36.0 TiB)"),
        ("negative.npy", [], "claims shape (-1, 6)"),
        ("truncated.npy", [], "only 568 bytes of data follow"),
        ("crc.npz", [], "Bad CRC-32"),
        ("encrypted.npz", [], "is encrypted"),
        ("method.npz", [], "compression method is not supported"),
        ("object.npz", [], "object arrays are not supported"),
        ("object.npy", [], "object arrays are not supported"),
        ("text.npz", [], "is not an .npy array"),
        ("text.npy", [], "neither an .npy nor an .npz file"),
        ("violated.npz", ["--max-rows=-3"], "--max-rows: must be an integer >= 0, got -3"),
        ("violated.npz", ["--max-rows", "1.5"], "--max-rows: must be an integer >= 0, got '1.5'"),
        ("violated.npz", ["--max-rows", "many"], "--max-rows: must be an integer >= 0, got 'many'"),
        ("violated.npz", ["--tol", "x"], "--tol: invalid float value: 'x'"),
        ("violated.npz", ["--mode", "loose"], "--mode: invalid choice: 'loose'"),
        ("violated.npz", ["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_cli_unreadable_input_and_bad_options_exit_2_with_one_line(bad_files, file, extra, text, as_json):
    argv = VERIFY[:1] + [file] + VERIFY[1:] + extra + (["--json"] if as_json else [])
    result = run_cli(*argv, cwd=bad_files)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert text in result.stderr
    assert result.stdout == ""


def test_cli_missing_options_exit_2_with_one_line(tmp_path):
    for argv in ([], ["verify"], ["verify", "x.npz", "--kind", "discrete"], ["bogus"]):
        result = run_cli(*argv, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1 and "--help" in result.stderr, result.stderr


def test_cli_max_rows_zero_lists_no_rows(bad_files):
    result = run_cli(*VERIFY[:1], "violated.npz", *VERIFY[1:], "--max-rows", "0", cwd=bad_files)
    assert result.returncode == 1
    assert "violating rows: 12 (none listed)" in result.stdout
    as_json = run_cli(*VERIFY[:1], "violated.npz", *VERIFY[1:], "--max-rows", "0", "--json", cwd=bad_files)
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and data["violations"] == 12 and data["violating_rows"] == []


def test_cli_reads_fortran_order_and_compressed_arrays(tmp_path, outputs):
    good, _ = outputs
    rows = good.reshape(-1, good.shape[-1])
    np.save(tmp_path / "fortran.npy", np.asfortranarray(rows))
    np.savez_compressed(tmp_path / "compressed.npz", logits=rows.astype(np.float32), other=rows)
    for name, want in (("fortran.npy", rows), ("compressed.npz", rows.astype(np.float32))):
        result = run_cli("verify", name, "--kind", "discrete", "--target-entropy", "1.0", "--json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["rows"] == 12 and data["min_entropy"] == era.check_discrete(want, 1.0).min_entropy


def test_violating_rows_refuses_a_negative_count(outputs):
    _, raw = outputs
    report = era.check_discrete(raw * 20, 1.0)
    with pytest.raises(ValueError, match="max_rows"):
        era.testing.violating_rows(raw * 20, report, kind="discrete", max_rows=-3)
