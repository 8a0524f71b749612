#!/bin/sh
# Builds the libFuzzer harnesses with clang into a scratch directory outside
# the source tree.  Usage: tests/fuzz/build.sh [OUTDIR] [HARNESS...]
#   OUTDIR   default: ${TMPDIR:-/tmp}/ndf-fuzz
#   HARNESS  default: all (fuzz_context_json fuzz_config ...)
# Environment: CC (default clang), BUILDDIR (where configure wrote
# build-config.h; default: the source tree), FUZZ_SANITIZE (default
# fuzzer,address,undefined), EXTRA_CFLAGS.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
builddir=${BUILDDIR:-$srcdir}
out=${1:-${TMPDIR:-/tmp}/ndf-fuzz}
[ $# -gt 0 ] && shift
CC=${CC:-clang}
SAN=${FUZZ_SANITIZE:-fuzzer,address,undefined}

if [ ! -f "$builddir/build-config.h" ]; then
    echo "build.sh: $builddir/build-config.h not found: run ./configure first" \
         "(or set BUILDDIR)" >&2
    exit 1
fi
case $out in
    "$srcdir"|"$srcdir"/*)
        echo "build.sh: $out is inside the source tree; pick a scratch directory" >&2
        exit 1 ;;
esac
mkdir -p "$out"

pkgs="libconfig libcjson zlib yaml-0.1"
pc_cflags=$(pkg-config --cflags $pkgs)
pc_libs=$(pkg-config --libs $pkgs)

# The host modules every harness may reach.  storage.c also holds the
# executor's completion hook, which needs pattern.c: fuzz_shims.c stands in
# for the two functions it calls (and aborts if a harness ever gets there).
core="base/util.c base/hashmap.c base/fsutil.c base/value.c base/learning.c model/context.c cli/ctxopt.c conf/config.c conf/conftext.c conf/agents.c store/storage.c serve/protocol.c"

harnesses=${*:-"fuzz_context_json fuzz_ctxopt_attr fuzz_config fuzz_storage_json fuzz_value_default fuzz_protocol"}

# -fsanitize-recover is off: any UBSan report is fatal, so the fuzzer
# stops at it and saves the input.
cflags="-g -O1 -fno-omit-frame-pointer -fsanitize=$SAN -fno-sanitize-recover=all
 -DHAVE_CONFIG_H
 -I$builddir -I$srcdir/sdk -I$srcdir/host -I$here $pc_cflags ${EXTRA_CFLAGS:-}"

objdir="$out/obj"
mkdir -p "$objdir"
# The host objects are built once, without the fuzzer's main.
for f in $core; do
    o="$objdir/$(basename "${f%.c}").o"
    if [ ! -f "$o" ] || [ "$srcdir/host/$f" -nt "$o" ] || [ "$builddir/build-config.h" -nt "$o" ]; then
        # shellcheck disable=SC2086
        $CC $cflags -fsanitize=fuzzer-no-link -c "$srcdir/host/$f" -o "$o"
    fi
done
for h in $harnesses; do
    # shellcheck disable=SC2086
    $CC $cflags "$here/$h.c" "$here/fuzz_shims.c" \
        $(for f in $core; do echo "$objdir/$(basename "${f%.c}").o"; done) \
        -o "$out/$h" $pc_libs -lpthread -lm
    echo "built $out/$h"
done
