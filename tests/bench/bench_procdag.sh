#!/bin/sh
# Benchmark: a process DAG.  2,000 runs of /bin/true in 20 layers of 100,
# each node depending on two nodes of the layer below, at concurrency 2:
# ndf (one "parallel" pattern of exec tasks, max_concurrent = 2, 2 threads)
# against make -j2 and ninja -j2 on the same generated DAG, and against a
# bare spawn-and-reap loop two at a time (the floor).  Prints wall times and
# ratios (best of 3 each).
set -eu
: "${top_builddir:?run through make bench}"
NDF=${NDF_BIN:-$top_builddir/ndf}
LOOP=$top_builddir/tests/bench/bench_spawnloop
W=100 L=20 N=2000
T=$(mktemp -d "${TMPDIR:-/tmp}/ndf-procdag.XXXXXX")
trap 'rm -rf "$T"' EXIT
TRUE=/bin/true

name() { echo "n_$1_$2"; }
{
    echo "executor: { threads = 2; default_timeout = 600.0; pattern_timeout = 600.0; };"
    echo "storage: { path = \"$T/state\"; };"
    echo "patterns = ( { name = \"dag\"; type = \"parallel\"; params = { max_concurrent = 2;"
    echo "  failure_tolerance = 0.0; rollback_enabled = false; tasks = ("
    l=0
    while [ $l -lt $L ]; do
        c=0
        while [ $c -lt $W ]; do
            sep=","
            [ $l -eq $((L - 1)) ] && [ $c -eq $((W - 1)) ] && sep=""
            if [ $l -eq 0 ]; then
                deps=""
            else
                deps="depends_on = [ \"n_$((l - 1))_$c\", \"n_$((l - 1))_$(((c + W - 1) % W))\" ]; "
            fi
            echo "    { name = \"n_${l}_$c\"; step = \"exec\"; params = { argv = [ \"$TRUE\" ]; }; $deps}$sep"
            c=$((c + 1))
        done
        l=$((l + 1))
    done
    echo "  ); }; } );"
} >"$T/ndf.conf"
{
    all=""
    l=0
    while [ $l -lt $L ]; do
        c=0
        while [ $c -lt $W ]; do
            t=n_${l}_$c
            all="$all $t"
            if [ $l -eq 0 ]; then
                printf '%s:\n\t%s\n' "$t" "$TRUE"
            else
                printf '%s: n_%d_%d n_%d_%d\n\t%s\n' "$t" $((l - 1)) $c $((l - 1)) \
                    $(((c + W - 1) % W)) "$TRUE"
            fi
            c=$((c + 1))
        done
        l=$((l + 1))
    done
    printf '.PHONY:%s\nall:%s\n' "$all" "$all"
} >"$T/Makefile.dag"
{
    printf 'rule t\n  command = %s\n' "$TRUE"
    l=0
    while [ $l -lt $L ]; do
        c=0
        while [ $c -lt $W ]; do
            if [ $l -eq 0 ]; then
                printf 'build n_%d_%d: t\n' $l $c
            else
                printf 'build n_%d_%d: t | n_%d_%d n_%d_%d\n' $l $c $((l - 1)) $c $((l - 1)) \
                    $(((c + W - 1) % W))
            fi
            c=$((c + 1))
        done
        l=$((l + 1))
    done
} >"$T/build.ninja"

now() { date +%s.%N; }
# best WALL-of-3 for a command
best() {
    b=""
    for i in 1 2 3; do
        s=$(now)
        "$@" >/dev/null 2>&1 || { echo "bench_procdag: failed: $*" >&2; exit 1; }
        e=$(now)
        d=$(echo "$s $e" | awk '{printf "%.3f", $2 - $1}')
        if [ -z "$b" ] || [ "$(echo "$d $b" | awk '{print ($1 < $2)}')" = 1 ]; then b=$d; fi
    done
    echo "$b"
}

export NDF_RUNTIME_DIR="$T/run"
"$NDF" -q -c "$T/ndf.conf" run dag --force >/dev/null 2>&1 || {
    echo "bench_procdag: ndf could not run the DAG:" >&2
    "$NDF" -c "$T/ndf.conf" run dag --force 2>&1 | tail -5 >&2
    exit 1
}
t_ndf=$(best "$NDF" -q -c "$T/ndf.conf" run dag --force)
t_make=$(best make -s -j2 -f "$T/Makefile.dag" -C "$T" all)
t_floor=$(best "$LOOP" $N 2 "$TRUE")
if command -v ninja >/dev/null 2>&1; then
    t_ninja=$(best ninja -j2 -C "$T" -f build.ninja)
else
    t_ninja=""
    echo "(ninja not installed: skipping that peer; apt-get install ninja-build)"
fi
echo "process DAG: $N x $TRUE, $L layers of $W, 2 deps each, concurrency 2 (best of 3, wall s)"
r() { echo "$1 $2" | awk '{printf "%.2f", $1 / $2}'; }
printf '  %-34s %7ss\n' "ndf run (parallel, exec steps)" "$t_ndf"
printf '  %-34s %7ss   ndf/make  = %s\n' "make -j2" "$t_make" "$(r "$t_ndf" "$t_make")"
[ -n "$t_ninja" ] &&
    printf '  %-34s %7ss   ndf/ninja = %s\n' "ninja -j2" "$t_ninja" "$(r "$t_ndf" "$t_ninja")"
printf '  %-34s %7ss   ndf/floor = %s\n' "spawn+reap loop, 2 at a time" "$t_floor" \
    "$(r "$t_ndf" "$t_floor")"
echo "  goal: ndf/faster peer <= 1.0, ndf/floor <= 1.10"
