#!/bin/sh
# Benchmark: what the plugin scanner costs at start-up.  `ndf list` (which
# loads every plugin) with 20 small plugins, and again with the built-in
# plugins alone: without scanning (plugins.scan = false), cold (no verdict
# kept: every build scanned in a child ndf), and cached (verdicts kept, the
# ordinary case).  Prints the median of RUNS runs each (default 15), side by
# side, and the ratios to the unscanned start-up; beside each, the mean CPU
# time (user + system) of a run, ndf and its scanner children included,
# which the machine's load does not inflate as it does the wall time.
set -eu
: "${top_builddir:?run through make bench}" "${top_srcdir:?}"
NDF=${NDF_BIN:-$top_builddir/ndf}
RUNS=${NDF_BENCH_SCAN_RUNS:-15}
NPLUG=20
T=$(mktemp -d "${TMPDIR:-/tmp}/ndf-scan.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -m 700 "$T/p20" "$T/run"
CC=${CC:-cc}
i=1
while [ $i -le $NPLUG ]; do
    cat >"$T/b$i.c" <<C
#include <ndf/sdk.h>
static int run(const ndf_host *h, ndf_exec *n, const ndf_value *p, void *x)
{ (void)h, (void)n, (void)p, (void)x; return NDF_OK; }
static const ndf_step_def step = { .size = sizeof(ndf_step_def), .name = "bench_$i",
    .description = "does nothing", .run = run };
static int init(const ndf_host *h, ndf_registrar *r, void **s) { (void)s; return h->register_step(r, &step); }
NDF_PLUGIN_DEFINE("bench$i", "1.0", "MIT", "scanner benchmark plugin", init, NULL);
C
    $CC -shared -fPIC -fvisibility=hidden -O2 -I"$top_srcdir/sdk" -I"$top_builddir/sdk" \
        -o "$T/p20/bench$i.so" "$T/b$i.c"
    i=$((i + 1))
done
export NDF_RUNTIME_DIR="$T/run" NDF_STATE_DIR="$T/statedir"

now() { date +%s%N; }
# children_cpu_s FILE: user + system seconds of the shell's waited-for
# children in FILE, the output of `times` (its second line: "1m2.5s 0m0.25s";
# `times` itself must run in the shell that waited for them, not in $(...)).
children_cpu_s() {
    awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } printf "%.6f", s }' "$1"
}
# median_ms CONF DIR MODE: "MEDIAN_WALL_MS MEAN_CPU_MS" of `ndf list`; MODE
# cold removes the verdicts before each run.
median_ms() {
    conf=$1 dir=$2 mode=$3
    : >"$T/times"
    r=0
    times >"$T/times0"
    while [ $r -lt "$RUNS" ]; do
        [ "$mode" = cold ] && rm -rf "$T/verdicts"
        t0=$(now)
        NDF_PLUGIN_PATH=$dir "$NDF" -q -c "$conf" list >/dev/null
        t1=$(now)
        echo $(((t1 - t0) / 1000)) >>"$T/times"
        r=$((r + 1))
    done
    times >"$T/times1"
    c0=$(children_cpu_s "$T/times0")
    c1=$(children_cpu_s "$T/times1")
    sort -n "$T/times" | awk -v c0="$c0" -v c1="$c1" -v n="$RUNS" '{ v[NR] = $1 } END {
        m = v[int((NR + 1) / 2)]; printf "%.2f %.2f", m / 1000, (c1 - c0) * 1000 / n }'
}
printf 'storage: { path = "%s/state"; };\nplugins: { scan = false; };\n' "$T" >"$T/off.conf"
printf 'storage: { path = "%s/state"; };\nplugins: { verdict_dir = "%s/verdicts"; };\n' "$T" "$T" >"$T/on.conf"

report() { # LABEL DIR
    off=$(median_ms "$T/off.conf" "$2" off)
    cold=$(median_ms "$T/on.conf" "$2" cold)
    median_ms "$T/on.conf" "$2" warm >/dev/null # leaves the verdicts
    cached=$(median_ms "$T/on.conf" "$2" cached)
    echo "$off $cold $cached" | awk -v l="$1" '{
        a = $1; b = $3; c = $5; ca = $2; cb = $4; cc = $6
        printf "%-22s wall  no scan %7.2f ms  cold %8.2f ms (%5.2fx)  cached %7.2f ms (%.2fx, %+.1f%%)\n",
               l, a, b, b / a, c, c / a, (c - a) / a * 100
        printf "%-22s cpu   no scan %7.2f ms  cold %8.2f ms (%5.2fx)  cached %7.2f ms (%.2fx, %+.1f%%)\n",
               "", ca, cb, cb / ca, cc, cc / ca, (cc - ca) / ca * 100 }'
}
echo "ndf list start-up, median wall of $RUNS runs each, and mean CPU per run:"
report "$NPLUG plugins:" "$T/p20"
nb=$(ls "$top_builddir/plugins/.libs/"*.so | wc -l)
report "$nb built-in plugins:" "$top_builddir/plugins/.libs"
