#!/bin/sh
# Benchmark: the memory captured output costs.  A step writes MB megabytes
# of random (incompressible) bytes to its standard output and as many to
# its standard error, with output_limit LIMIT (default 100 MB each at the
# 64 MiB maximum); what is kept is 2 x LIMIT.  Prints the peak RSS of
# `ndf run` (one-shot), of `ndf logs` printing one kept stream, and of
# `ndf serve` while CONC (default 4) `ndf ctl
# run` of it run at once, and checks that the store kept the newest LIMIT
# bytes of each stream.  With NDF_BEFORE=/path/to/old/ndf (and
# NDF_BEFORE_PLUGINS, its plugin directory) the same is measured for that
# build, side by side; then both again with a PostgreSQL store (a private
# server, tests/shell/pglib.sh), when there is one.
set -eu
: "${top_builddir:?run through make bench}" "${top_srcdir:?}"
NDF=${NDF_BIN:-$top_builddir/ndf}
MB=${NDF_BENCH_CAPTURE_MB:-100}
LIMIT=${NDF_BENCH_CAPTURE_LIMIT:-67108864}
CONC=${NDF_BENCH_CAPTURE_CONC:-4}
. "$top_srcdir/tests/shell/lib.sh"
. "$top_srcdir/tests/shell/pglib.sh"
T=$SCRATCH
SERVER=
STORE=
cleanup() {
    [ -n "$SERVER" ] && kill $(pgrep -P "$SERVER") 2>/dev/null && wait "$SERVER" 2>/dev/null
    pg_stop
    rm -rf "$T"
}
trap cleanup EXIT
[ -x /usr/bin/time ] || { echo "bench_capture: needs GNU time (/usr/bin/time)" >&2; exit 77; }

conf() { # DIR: a configuration whose store is in DIR
    mkdir -p "$1"
    cat >"$1/ndf.conf" <<C
storage: { path = "$1/state"; $STORE };
# a loaded machine may take more than the default minute for it
executor: { default_timeout = 900.0; pattern_timeout = 900.0; };
patterns = (
    { name = "big"; type = "sequential";
      params = { steps = (
          { name = "write"; step = "exec";
            params = { shell = true; output_limit = $LIMIT;
                       command = "head -c ${MB}000000 /dev/urandom | tee $1/out; head -c ${MB}000000 /dev/urandom | tee $1/err >&2"; }; }
      ); }; }
);
C
}

kept() { # NDF PLUGINS DIR: "ok" when the store kept the newest LIMIT bytes of each stream
    id=$(NDF_PLUGIN_PATH=$2 "$1" -q -c "$3/ndf.conf" runs big --limit 1 | awk 'NR == 2 { print $1 }')
    for s in out err; do
        # logs ends what it prints with a newline when the output does not
        tail -c "$LIMIT" "$3/$s" >"$3/want"
        NDF_PLUGIN_PATH=$2 "$1" -q -c "$3/ndf.conf" logs "$id" write --stream std$s |
            head -c "$(wc -c <"$3/want")" | cmp -s - "$3/want" || { echo "WRONG"; return; }
    done
    echo "ok"
}

measure() { # LABEL NDF PLUGINS
    d=$T/$1
    conf "$d"
    export NDF_RUNTIME_DIR="$d/run"
    mkdir -m 700 "$d/run"
    one=$(NDF_PLUGIN_PATH=$3 /usr/bin/time -f %M "$2" -q -c "$d/ndf.conf" run big 2>&1 >/dev/null |
          tail -1)
    k1=$(kept "$2" "$3" "$d")
    # reading it back: ndf logs of one stream (LIMIT bytes kept)
    lid=$(NDF_PLUGIN_PATH=$3 "$2" -q -c "$d/ndf.conf" runs big --limit 1 | awk 'NR == 2 { print $1 }')
    logs=$(NDF_PLUGIN_PATH=$3 /usr/bin/time -f %M "$2" -q -c "$d/ndf.conf" logs "$lid" write \
        --stream stdout 2>&1 >/dev/null | tail -1)
    rm -f "$d/out" "$d/err" "$d/want"
    NDF_PLUGIN_PATH=$3 /usr/bin/time -f %M -o "$d/serve.rss" "$2" -q -c "$d/ndf.conf" serve \
        --no-watch 2>"$d/serve.log" &
    SERVER=$!
    i=0
    until NDF_PLUGIN_PATH=$3 "$2" -q -c "$d/ndf.conf" ctl ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 200 ] || { echo "bench_capture: $1: the server did not start" >&2; exit 1; }
        sleep 0.05
    done
    i=0
    pids=
    while [ $i -lt "$CONC" ]; do
        NDF_PLUGIN_PATH=$3 "$2" -q -c "$d/ndf.conf" ctl run big >/dev/null 2>"$d/ctl$i.err" &
        pids="$pids $!"
        i=$((i + 1))
    done
    fails=0
    for p in $pids; do wait "$p" || fails=$((fails + 1)); done
    [ $fails -eq 0 ] || sed "s/^/$1: ctl run: /" "$d"/ctl*.err | sort | uniq -c | head -5 >&2
    # the server is time's child: stop it, and time reports its peak
    kill -TERM $(pgrep -P "$SERVER")
    wait "$SERVER" || true
    SERVER=
    srv=$(tail -1 "$d/serve.rss")
    awk -v l="$1" -v a="$one" -v b="$srv" -v k="$k1" -v c="$CONC" -v f="$fails" -v g="$logs" 'BEGIN {
        printf "%-7s one-shot run: peak RSS %7.1f MB (stored output %s)   logs of one stream: peak RSS %7.1f MB   serve with %d ctl run at once: peak RSS %7.1f MB%s\n",
            l, a / 1024, k, g / 1024, c, b / 1024, f ? sprintf(" (%d runs FAILED)", f) : "" }'
}

both() { # SUFFIX
    if [ -n "${NDF_BEFORE:-}" ]; then
        measure "before$1" "$NDF_BEFORE" "${NDF_BEFORE_PLUGINS:?the plugin directory of NDF_BEFORE}"
    fi
    measure "after$1" "$NDF" "${NDF_PLUGIN_PATH:-$top_builddir/plugins/.libs}"
}
echo "a step writing 2 x $MB MB of random bytes, output_limit $LIMIT bytes"
echo "SQLite store:"
both ""
# the same with a PostgreSQL store, each build in a database of its own
grep -q '^#define HAVE_LIBPQ 1' "$top_builddir/build-config.h" && NDF_HAVE_POSTGRESQL=yes
pg_skip() { echo "PostgreSQL store: skipped ($*)"; exit 0; }
pg_start
trap cleanup EXIT
echo "PostgreSQL store:"
for b in before after; do pg_sql postgres "CREATE DATABASE capture_$b"; done
STORE="backend = \"postgresql\"; conninfo = \"host=$PG_DIR user=postgres dbname=capture_before\";"
[ -n "${NDF_BEFORE:-}" ] && measure before-pg "$NDF_BEFORE" "$NDF_BEFORE_PLUGINS"
STORE="backend = \"postgresql\"; conninfo = \"host=$PG_DIR user=postgres dbname=capture_after\";"
measure after-pg "$NDF" "${NDF_PLUGIN_PATH:-$top_builddir/plugins/.libs}"
