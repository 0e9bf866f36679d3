"""The built wheel installs into a fresh virtualenv and `import era` works there from any
directory, with libera.so bundled in the package and no Swift toolchain on PATH."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "bindings" / "python"

CHECK = r"""
import os, sys, numpy as np
import era
here = os.path.dirname(era.__file__)
assert here.startswith(sys.prefix), (here, sys.prefix)
maps = open("/proc/self/maps").read()
loaded = {line.split()[-1] for line in maps.splitlines() if line.endswith("libera.so")}
assert loaded == {os.path.join(here, "libera.so")}, loaded
out = era.discrete_forward(np.arange(10.0), 1.0)
report = era.check_discrete(out, 1.0)
assert report.holds and report.min_entropy >= 1.0
import jax, era.jax  # the XLA FFI handlers load and register without a build tree
assert "era_discrete_forward" in jax.jit(lambda z: era.jax.discrete_era(z, 1.0)).lower(np.arange(10.0)).as_text()
print("ok", era.version(), here)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", str(out), str(PACKAGE)],
        check=True, cwd=ROOT,
    )
    (path,) = out.glob("*.whl")
    return path


def test_wheel_bundles_libera_with_an_origin_run_path(wheel, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    assert "era/libera.so" in names
    modules = sorted(n for n in names if n.startswith("era/_era") and n.endswith(".so"))
    # the pybind11 module and era.jax's XLA FFI handlers (built because jax is installed)
    assert [m.split(".")[0] for m in modules] == ["era/_era", "era/_era_xla"], modules
    for module in modules:
        zipfile.ZipFile(wheel).extract(module, tmp_path)
        if shutil.which("readelf"):
            dynamic = subprocess.run(["readelf", "-d", str(tmp_path / module)], capture_output=True, text=True).stdout
            assert "[$ORIGIN]" in dynamic and "[libera.so]" in dynamic


def test_fresh_virtualenv_imports_era_without_swift(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)], check=True)
    bare_path = "/usr/bin:/bin"
    assert shutil.which("swift", path=bare_path) is None, "swift is on the bare PATH; the check would prove nothing"
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    result = subprocess.run(
        ["env", "-i", f"PATH={bare_path}", f"HOME={workdir}", str(python), "-c", CHECK],
        cwd=workdir, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok ") and str(venv) in result.stdout
    cli = subprocess.run(["env", "-i", f"PATH={bare_path}", str(python), "-m", "era", "--version"],
                         cwd=workdir, capture_output=True, text=True)
    assert cli.returncode == 0 and cli.stdout.startswith("era ")
    assert os.path.isdir(venv / "lib")
