"""Builds the era Python package (distribution era-activation): libera (Swift) first, then
the pybind11 module era._era.

`pip install ./bindings/python` (from the repository root) or `pip install` of the sdist runs,
in order:
  1. `swift build -c release --product era` in the libera sources: $ERA_SOURCE_DIR, else this
     directory (an sdist carries them), else the repository root two levels up; giving
     libera.so;
  2. a copy of libera.so into the package (era/libera.so), its debug information stripped
     (except in an in-place build, a developer's);
  3. the compilation of csrc/era_module.cpp against include/era.h, linked with -lera and the
     run path $ORIGIN, so that era/_era*.so finds the libera.so next to it; and, when jax is
     installed, of csrc/era_xla.cpp (era.jax's XLA FFI handlers) against the XLA FFI headers
     jaxlib ships (jax.ffi.include_dir()), or against $ERA_XLA_FFI_INCLUDE (the same headers,
     when the building Python has no jax).
The installed package needs neither Swift nor the repository at run time.

Environment: SWIFT (the swift executable, default `swift`), ERA_SOURCE_DIR (the libera
sources, when this directory has been copied elsewhere), ERA_SWIFT_SCRATCH (SwiftPM's build
directory, --scratch-path, to share one build between several wheels), ERA_XLA_FFI_INCLUDE.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def repository_root() -> Path:
    """The libera checkout whose include/era.h and Package.swift this package builds."""
    candidates = [os.environ.get("ERA_SOURCE_DIR"), str(HERE), str(HERE.parent.parent)]
    for candidate in candidates:
        if candidate and (Path(candidate) / "include" / "era.h").is_file() and (Path(candidate) / "Package.swift").is_file():
            return Path(candidate).resolve()
    sys.exit(
        "era: cannot find the libera sources (include/era.h, Package.swift) beside or two levels "
        f"above {HERE}; build from a checkout of libera or its sdist, or set ERA_SOURCE_DIR to one"
    )


ROOT = repository_root()


def header_version() -> str:
    """MAJOR.MINOR.PATCH from include/era.h, the one place the version is written."""
    text = (ROOT / "include" / "era.h").read_text()
    parts = [re.search(rf"#define ERA_VERSION_{name} (\d+)", text).group(1) for name in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


class BuildWithLibera(build_ext):
    """build_ext that first builds libera.so with SwiftPM and bundles it into the package."""

    def run(self):
        libera = self.build_libera()
        package_dirs = [Path(self.build_lib) / "era"]
        if self.inplace:
            package_dirs.append(HERE / "src" / "era")
        for package_dir in package_dirs:
            package_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(libera, package_dir / "libera.so")
        if not self.inplace:
            strip_debug_information(package_dirs[0] / "libera.so")
        # Link against the bundled copy, so the module's NEEDED entry is plain libera.so.
        link_dir = str(package_dirs[0])
        for ext in self.extensions:
            ext.library_dirs.append(link_dir)
        super().run()

    def build_libera(self) -> Path:
        swift = os.environ.get("SWIFT", "swift")
        if shutil.which(swift) is None:
            sys.exit(
                f"era: `{swift}` was not found. Building era from source compiles libera, which is "
                "written in Swift: it needs a Swift toolchain 5.9 or newer on PATH (or SWIFT=/path/to/swift) "
                "and OpenBLAS (libopenblas-dev). Where neither is wanted, install a prebuilt "
                "era-activation wheel instead."
            )
        scratch = os.environ.get("ERA_SWIFT_SCRATCH")
        options = ["-c", "release"] + (["--scratch-path", scratch] if scratch else [])
        command = [swift, "build", *options, "--product", "era"]
        print("era: " + " ".join(command) + f"  (in {ROOT})", flush=True)
        subprocess.run(command, cwd=ROOT, check=True)
        bin_dir = subprocess.run(
            [swift, "build", *options, "--show-bin-path"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()
        libera = Path(bin_dir) / "libera.so"
        if not libera.is_file():
            sys.exit(f"era: swift build finished but {libera} is missing")
        return libera


def strip_debug_information(library: Path) -> None:
    """Strips the bundled libera (binutils' strip): the package needs no debug information,
    and it is most of the file. Left as it is where strip is missing."""
    strip = shutil.which("strip")
    if strip is None:
        print("era: strip was not found: bundling libera.so with its debug information", flush=True)
        return
    subprocess.run([strip, "--strip-unneeded", str(library)], check=True)


def xla_ffi_include_dir():
    """The XLA FFI headers jaxlib ships (jax.ffi.include_dir()), or $ERA_XLA_FFI_INCLUDE, or
    None without either."""
    given = os.environ.get("ERA_XLA_FFI_INCLUDE")
    if given:
        if not (Path(given) / "xla" / "ffi" / "api" / "ffi.h").is_file():
            sys.exit(f"era: ERA_XLA_FFI_INCLUDE={given} holds no xla/ffi/api/ffi.h")
        return given
    try:
        import jax.ffi
    except ImportError:
        return None
    return jax.ffi.include_dir()


def extensions():
    """era._era always; era._era_xla (era.jax's XLA FFI handlers) when jax is installed at
    build time. Without it era.jax raises ImportError with the way to get it."""
    common = dict(include_dirs=[str(ROOT / "include")], libraries=["era"], extra_link_args=["-Wl,-rpath,$ORIGIN"],
                  depends=[str(Path("csrc") / "era_params.hpp")], cxx_std=17)
    modules = [Pybind11Extension("era._era", sources=[str(Path("csrc") / "era_module.cpp")], **common)]
    ffi_headers = xla_ffi_include_dir()
    if ffi_headers is None:
        print("era: jax is not installed: building without era._era_xla (era.jax needs it)", flush=True)
    else:
        # -isystem: the XLA headers' own warnings are not ours to fix
        modules.append(Pybind11Extension("era._era_xla", sources=[str(Path("csrc") / "era_xla.cpp")],
                                         extra_compile_args=["-isystem", ffi_headers], **common))
    return modules


setup(
    version=header_version(),
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildWithLibera},
)
