#!/usr/bin/env bash
# Checks of libera as it is distributed. Usage: Tests/dist-checks.sh BUILD_DIR
#   release   build/lib (made by `make lib`): libera.so -> libera.so.MAJOR -> libera.so.X.Y.Z
#             with SONAME libera.so.MAJOR, all from era.h's version macros; stripped, its
#             debug information in libera.so.X.Y.Z.debug, which .gnu_debuglink names (CRC
#             checked); era_version_string() and era_abi_version() return the macros
#   install   make install into a fresh prefix: the library, its links and debug file, era.h,
#             era.pc and the CMake package (lib/cmake/era)
#   cmake     a C++ consumer (Tests/dist/cmake-consumer) configured with
#             find_package(era 0.1 CONFIG REQUIRED), built against era::era and run; the
#             version file accepts 0.1, 0.0.1, 0.1.0...<1 and no version, refuses 1.0 and 0.2
#   pkgconfig a C consumer (Tests/dist/pkg-config-consumer.c) built with pkg-config and run
#             with nothing but the prefix on the loader's path
#   wheel     bindings/python/build-dist.sh for python3 alone: the sdist, and from it the
#             manylinux wheel (auditwheel repair, OpenBLAS bundled); the sdist stops with a
#             clear error where swift is not on PATH
#   venv      the wheel installed into a fresh virtualenv without system site-packages
#             (numpy from the package index); then, with swift off PATH, an empty
#             environment and, where the namespaces allow it, the system OpenBLAS hidden from
#             the loader: import era and the numpy smoke test (Tests/dist/wheel_smoke.py);
#             the torch and jax smoke tests borrow python3's torch and jax when python3 has
#             them (same Python version as the wheel), else are reported skipped; ldd of every
#             shared object of the installed package shows only the package's own files and
#             the system libraries manylinux allows, and no RUNPATH names a build directory
# Ends with the line "dist checks: N passed, M failed, K skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
# shellcheck source=Tests/checks.sh
. "$root/Tests/checks.sh"

macro() { awk -v name="ERA_$1" '$1 == "#define" && $2 == name {print $3}' include/era.h; }
major=$(macro VERSION_MAJOR) version="$(macro VERSION_MAJOR).$(macro VERSION_MINOR).$(macro VERSION_PATCH)"
realname=libera.so.$version soname=libera.so.$major
release=$build/lib
work=$build/dist-checks
rm -rf "$work"
mkdir -p "$work"

# ---- the release library
release_links() {
    [ "$(readlink "$release/libera.so")" = "$soname" ] && [ "$(readlink "$release/$soname")" = "$realname" ] &&
        [ -f "$release/$realname" ] && [ ! -L "$release/$realname" ] ||
        { ls -l "$release"; return 1; }
}
release_soname() {
    readelf -d "$release/$realname" | grep -q "(SONAME).*\[$soname\]" || { readelf -d "$release/$realname" | grep SONAME; return 1; }
}
release_stripped() {
    local sections
    sections=$(readelf -S -W "$release/$realname")
    if grep -qE '\.debug_info|\.symtab' <<<"$sections"; then echo "the release library keeps debug sections or .symtab"; return 1; fi
    readelf -S -W "$release/$realname.debug" | grep -q '\.debug_info' || { echo "$realname.debug has no .debug_info"; return 1; }
}
release_debuglink() {  # the name and the CRC-32 in .gnu_debuglink are those of the debug file
    python3 - "$release/$realname" "$release/$realname.debug" <<'EOF'
import os, struct, subprocess, sys, tempfile, zlib
library, debug = sys.argv[1:]
with tempfile.TemporaryDirectory() as tmp:
    section = os.path.join(tmp, "link")
    subprocess.run(["objcopy", "--dump-section", f".gnu_debuglink={section}", library, os.path.join(tmp, "copy")], check=True)
    data = open(section, "rb").read()
name = data[: data.index(b"\0")].decode()
(crc,) = struct.unpack("<I", data[-4:])
want = zlib.crc32(open(debug, "rb").read()) & 0xFFFFFFFF
assert name == os.path.basename(debug), (name, debug)
assert crc == want, (hex(crc), hex(want))
EOF
}
release_versions() {  # era_version_string() and era_abi_version() give the header's macros
    printf '#include <stdio.h>\n#include <string.h>\n#include "era.h"\nint main(void) { char v[32];\n'\
'snprintf(v, sizeof v, "%%d.%%d.%%d", ERA_VERSION_MAJOR, ERA_VERSION_MINOR, ERA_VERSION_PATCH);\n'\
'return !(strcmp(v, era_version_string()) == 0 && era_abi_version() == ERA_ABI_VERSION); }\n' >"$work/versions.c"
    ${CC:-cc} -std=c99 -Wall -Wextra -Werror -I include "$work/versions.c" -L "$release" -lera -Wl,-rpath,"$release" \
        -o "$work/versions" && readelf -d "$work/versions" | grep -q "NEEDED.*\[$soname\]" && "$work/versions"
}

# ---- make install, the CMake package and pkg-config
prefix=$work/prefix
installed() {
    make --no-print-directory -s install PREFIX="$prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; return 1; }
    local f
    for f in include/era.h "lib/$realname" "lib/.debug/$realname.debug" lib/pkgconfig/era.pc \
             lib/cmake/era/eraConfig.cmake lib/cmake/era/eraConfigVersion.cmake; do
        [ -f "$prefix/$f" ] || { echo "missing: $f"; return 1; }
    done
    [ "$(readlink "$prefix/lib/libera.so")" = "$soname" ] && [ "$(readlink "$prefix/lib/$soname")" = "$realname" ]
}
cmake_consumer() {
    cmake -S Tests/dist/cmake-consumer -B "$work/cmake-consumer" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_BUILD_TYPE=Release >"$work/cmake-consumer.log" 2>&1 &&
        cmake --build "$work/cmake-consumer" >>"$work/cmake-consumer.log" 2>&1 ||
        { cat "$work/cmake-consumer.log"; return 1; }
    readelf -d "$work/cmake-consumer/era_consumer" | grep -q "NEEDED.*\[$soname\]" || { echo "era_consumer does not need $soname"; return 1; }
    env -i "$work/cmake-consumer/era_consumer"
}
cmake_versions() {  # find_package(era REQUEST CONFIG) for each request: found or not, as SameMajorVersion says
    local dir=$work/cmake-versions request want got
    mkdir -p "$dir"
    printf 'cmake_minimum_required(VERSION 3.19)\nproject(v LANGUAGES NONE)\nfind_package(era ${REQUEST} CONFIG)\nmessage(STATUS "found=${era_FOUND}")\n' >"$dir/CMakeLists.txt"
    for pair in "0.1:1" "0.0.1:1" "$version:1" "0.1.0...<1:1" ":1" "1.0:0" "0.2:0" "$((major + 1)):0"; do
        request=${pair%:*} want=${pair##*:}
        rm -rf "$dir/b"
        cmake -S "$dir" -B "$dir/b" -DCMAKE_PREFIX_PATH="$prefix" -DREQUEST="$request" >"$dir/log" 2>&1 || { cat "$dir/log"; return 1; }
        got=0
        grep -q -- "-- found=1" "$dir/log" && got=1
        [ "$got" = "$want" ] || { echo "find_package(era $request): found=$got, expected $want"; return 1; }
    done
}
pkg_config_consumer() {
    local flags
    flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs era) || return 1
    [ "$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --modversion era)" = "$version" ] || return 1
    # shellcheck disable=SC2086
    ${CC:-cc} -std=c99 -Wall -Wextra -Werror -pedantic Tests/dist/pkg-config-consumer.c $flags -o "$work/pkg-config-consumer" &&
        readelf -d "$work/pkg-config-consumer" | grep -q "NEEDED.*\[$soname\]" &&
        env -i LD_LIBRARY_PATH="$prefix/lib" "$work/pkg-config-consumer"
}

# ---- the wheel
dist=$work/dist
wheel=""
built_wheel() {
    bindings/python/build-dist.sh "$dist" python3 || return 1
    local tag
    tag=$(python3 -c "import sys; print('cp%d%d' % sys.version_info[:2])")
    wheel=$(ls "$dist"/era_activation-"$version"-"$tag"-"$tag"-manylinux_*_x86_64.whl 2>/dev/null | head -1)
    [ -n "$wheel" ] || { echo "no manylinux wheel for $tag in $dist"; ls "$dist"; return 1; }
    [ -f "$dist/era_activation-$version.tar.gz" ] || { echo "no sdist"; return 1; }
    python3 - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert "era/libera.so" in names, "libera.so is not in the wheel"
assert any(n.startswith("era/_era.cpython-") for n in names), "era._era is not in the wheel"
assert any(n.startswith("era_activation.libs/libopenblas") for n in names), "OpenBLAS is not bundled"
EOF
}
bare_path=/usr/bin:/bin
sdist_without_swift() {  # pip stops with the message that says Swift is needed
    local log=$work/sdist-no-swift.log
    if PATH=$bare_path command -v swift >/dev/null; then echo "swift is on $bare_path: the check would prove nothing"; return 1; fi
    if env PATH="$work/venv/bin:$bare_path" PIP_DISABLE_PIP_VERSION_CHECK=1 "$work/venv/bin/python" -m pip wheel --no-deps \
        -w "$work/sdist-wheel" "$dist/era_activation-$version.tar.gz" >"$log" 2>&1; then
        echo "the sdist built without swift"; return 1
    fi
    grep -q "needs a Swift toolchain 5.9 or newer" "$log" || { tail -30 "$log"; return 1; }
}
fresh_venv() {
    python3 -m venv "$work/venv" &&
        "$work/venv/bin/python" -c "import sys; assert sys.prefix != sys.base_prefix" &&
        ! "$work/venv/bin/python" -c "import numpy" 2>/dev/null &&
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$work/venv/bin/python" -m pip install -q "$wheel" >"$work/venv.log" 2>&1 ||
        { cat "$work/venv.log"; return 1; }
}

# Runs a command in a private mount namespace where the directory of the system's
# libopenblas.so.0 is hidden under an empty tmpfs (as root, with unshare), so that only the
# wheel's copy can be loaded; without such a namespace the command runs as it is.
system_blas=$( (ldconfig -p 2>/dev/null | awk '$1 == "libopenblas.so.0" {print $NF; exit}') )
blas_dir=""
[ -n "$system_blas" ] && blas_dir=$(dirname "$(readlink -f "$system_blas")")
hidden() {
    if [ -n "$blas_dir" ] && [ "$blas_dir" != /usr/lib/x86_64-linux-gnu ] && [ "$blas_dir" != /lib/x86_64-linux-gnu ] &&
        unshare --mount --propagation private true 2>/dev/null; then
        unshare --mount --propagation private sh -c 'mount -t tmpfs none "$1" && shift && exec "$@"' sh "$blas_dir" "$@"
    else
        "$@"
    fi
}
blas_hidden() {
    [ -n "$system_blas" ] || { echo "(no system libopenblas.so.0)"; return 0; }
    unshare --mount --propagation private true 2>/dev/null ||
        { echo "no private mount namespace here (unshare needs root): the system OpenBLAS stays visible"; return 1; }
    case $blas_dir in /usr/lib/x86_64-linux-gnu | /lib/x86_64-linux-gnu)
        echo "$system_blas is not in a directory of its own ($blas_dir): it cannot be hidden alone"; return 1 ;;
    esac
    # with the directory hidden, the SwiftPM build's libera.so no longer finds OpenBLAS
    hidden ldd "$root/.build/release/libera.so" | grep -q "libopenblas.so.0 => not found"
}
smoke() {  # smoke WHAT [SITE]: Tests/dist/wheel_smoke.py in the virtualenv, bare environment
    local out=$work/smoke
    mkdir -p "$out"
    cp Tests/dist/wheel_smoke.py "$out/"
    (cd "$out" && hidden env -i PATH="$bare_path" HOME="$out" "$work/venv/bin/python" wheel_smoke.py "$@")
}
installed_ldd() {  # every shared object of the installed package: dependencies from the package or the system's base libraries
    local site status=0 so line path
    site=$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['platlib'])")
    for so in "$site"/era/*.so "$site"/era_activation.libs/*; do
        while read -r line; do
            case $line in
                *"not found"*) echo "$so: $line"; status=1; continue ;;
                *" => "*) path=${line#* => }; path=${path%% (*} ;;
                *) continue ;;
            esac
            case $path in
                "$site"/*) ;;
                /lib/x86_64-linux-gnu/lib[cm].so.6 | /lib/x86_64-linux-gnu/libstdc++.so.6 | /lib/x86_64-linux-gnu/libgcc_s.so.1 | \
                /lib/x86_64-linux-gnu/libpthread.so.0 | /lib/x86_64-linux-gnu/libdl.so.2 | /lib/x86_64-linux-gnu/librt.so.1 | \
                /lib64/ld-linux-x86-64.so.2 | /usr/lib/x86_64-linux-gnu/lib[cm].so.6 | /usr/lib/x86_64-linux-gnu/libstdc++.so.6 | \
                /usr/lib/x86_64-linux-gnu/libgcc_s.so.1) ;;
                *) echo "$so: $line (outside the package and the manylinux system libraries)"; status=1 ;;
            esac
        done < <(hidden env -i ldd "$so")
        if readelf -d "$so" | grep -E 'R(UN)?PATH' | grep -v '\[\$ORIGIN' | grep -q .; then
            echo "$so: a run path that is not relative to the package:"; readelf -d "$so" | grep -E 'R(UN)?PATH'; status=1
        fi
        if strings "$so" | grep -qF -e "$root" -e "$HOME/.pyenv"; then
            echo "$so: names a build path"; status=1
        fi
    done
    return $status
}

check "release library links: libera.so -> $soname -> $realname (era.h's version macros)" release_links
check "release library SONAME is $soname" release_soname
check "release library stripped, debug information in $realname.debug" release_stripped
check ".gnu_debuglink names $realname.debug with its CRC-32" release_debuglink
check "era_version_string() and era_abi_version() are era.h's macros; a program linked with -lera needs $soname" release_versions
check "make install: library, links, debug file, era.h, era.pc, CMake package" installed
check "CMake: find_package(era 0.1 CONFIG REQUIRED) builds and runs a C++ consumer of era::era" cmake_consumer
check "CMake: the version file is SameMajorVersion (0.1, 0.0.1, ranges, none: found; 1.0, 0.2: not)" cmake_versions
check "pkg-config: a C consumer builds and runs against the installed prefix alone" pkg_config_consumer
wheel_built=0
if check "sdist, and from it the manylinux wheel for python3 with OpenBLAS bundled" built_wheel; then wheel_built=1; fi
if [ "$wheel_built" = 1 ] && check "the wheel installs into a fresh virtualenv without system site-packages" fresh_venv; then
    check "the system OpenBLAS is hidden from the loader for the runs below" blas_hidden
    check "swift off PATH, empty environment, no system OpenBLAS: import era, numpy smoke test" smoke numpy
    main_site=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    same_python=$("$work/venv/bin/python" -c "import sys; print(sys.version_info[:2])")
    [ "$same_python" = "$(python3 -c 'import sys; print(sys.version_info[:2])')" ] || main_site=""
    for framework in torch jax; do
        if [ -n "$main_site" ] && python3 -c "import $framework" 2>/dev/null; then
            check "$framework smoke test (torch/jax borrowed from python3's site-packages, era from the wheel)" smoke "$framework" "$main_site"
        else
            skip "$framework smoke test: python3 has no $framework for this Python version"
        fi
    done
    check "ldd of the installed package: only its own files and manylinux's system libraries; no build paths" installed_ldd
    check "the sdist without swift on PATH stops with a clear error" sdist_without_swift
fi

echo "dist checks: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
