#!/bin/sh
# End-to-end figures of the store (issue 10), each beside its comparison in
# the same run:
#  1. durable executions per second of a one-step no-op pattern through
#     `ndf batch` and through `ndf serve` with 8 persistent socket clients,
#     sync normal and full, beside bare SQLite doing the same inserts in
#     transactions of the same mean size (bench_store bare);
#  2. `ndf list` start-up with 10,000 patterns, empty history and with
#     NDF_BENCH_HISTORY (default 100) executions each;
#  3. one `ndf run` of the no-op pattern as a whole process beside `make -f`
#     of a one-recipe makefile running /bin/true (hyperfine when installed,
#     else a loop timer), with the ratio, and the same process stopped
#     earlier (--version, check-config, plugins, list) to say where its
#     time goes, and with its step isolated in a worker;
#  4. a 10,000-task parallel pattern run 50 times: first, middle and last.
# Figures are printed, never asserted.  NDF_BENCH_EXECUTIONS (10000),
# NDF_BENCH_RUNS (100) for part one,
# NDF_BENCH_DIR (default $top_builddir) for the scratch space.
set -u
: "${top_builddir:?run through make bench}"
# NDF_BENCH_PARTS: which of rate, list, one, wide to run (default all)
PARTS=${NDF_BENCH_PARTS:-rate list one wide}
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
NDF=$top_builddir/ndf
HELPER=$top_builddir/tests/bench/bench_store
N=${NDF_BENCH_EXECUTIONS:-10000}
HIST=${NDF_BENCH_HISTORY:-100}
B=$(mktemp -d "${NDF_BENCH_DIR:-$top_builddir}/bench_e2e.XXXXXX")
trap 'kill $SERVER 2>/dev/null; rm -rf "$B"' EXIT
SERVER=
mkdir -m 700 "$B/run"
export NDF_RUNTIME_DIR=$B/run
export NDF_PLUGIN_PATH=${NDF_PLUGIN_PATH:-$top_builddir/plugins/.libs}
SOCK=$B/run/ndf.sock
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
# conf SYNC DIR: the no-op pattern, storing in DIR.  The core plugins run
# in process, as an installed ndf runs the plugins of its own directory
# (isolation = auto); the build tree's plugins, reached through
# NDF_PLUGIN_PATH, would otherwise count as third-party and run their
# steps in a worker process.  ISOLATION=process measures that instead.
ISOLATION=none
conf() {
    cat >"$B/ndf.conf" <<EOF
storage: { path = "$2"; sync = "$1"; history_limit = 1000000; };
confidence: { threshold = 0.0; };
executor: { threads = 4; };
plugins: { isolation = "$ISOLATION"; };
server: { socket = "$SOCK"; };
patterns = (
    { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; }
);
EOF
}
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) print "{\"pattern\":\"nop\"}" }' >"$B/batch.jsonl"

# The 8 persistent clients: python3 when present (threads on blocking
# sockets), one request at a time per connection.
clients() {
    python3 - "$SOCK" "$N" <<'PY'
import socket, sys, threading
path, total = sys.argv[1], int(sys.argv[2])
per = [total // 8 + (i < total % 8) for i in range(8)]
bad = []
def work(k):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    f = s.makefile("rwb")
    for _ in range(k):
        f.write(b'{"cmd":"run","pattern":"nop"}\n')
        f.flush()
        line = f.readline()
        if b'"status":"ok"' not in line:
            bad.append(line[:200])
    s.close()
ts = [threading.Thread(target=work, args=(k,)) for k in per]
for t in ts: t.start()
for t in ts: t.join()
if bad:
    sys.stderr.write("bench_e2e: %d failed answers, first: %r\n" % (len(bad), bad[0]))
PY
}

if part rate; then
echo "durable executions/s, $N one-step no-op executions each:"
printf '  %-7s %12s %10s %10s %14s %10s %16s %10s %10s\n' sync batch "per txn" "vs bare" "serve 8 cli" "vs bare" "bare SQLite" "per txn" "bare@1"
for sync in normal full; do
    # batch
    conf "$sync" "$B/st-batch-$sync"
    "$NDF" -c "$B/ndf.conf" run nop >/dev/null 2>&1 # the store and the pattern row exist
    t0=$(now)
    "$NDF" -c "$B/ndf.conf" -v batch "$B/batch.jsonl" >"$B/batch.out" 2>"$B/batch.err"
    t1=$(now)
    bper=$(sed -n 's/.*batch: .*(\([0-9.]*\) per transaction).*/\1/p' "$B/batch.err")
    okb=$(grep -c '"success":true' "$B/batch.out")
    [ "$okb" -eq "$N" ] || echo "  (batch: only $okb of $N succeeded)"
    rb=$(rate "$N" "$t0" "$t1")
    # serve, 8 clients
    conf "$sync" "$B/st-serve-$sync"
    "$NDF" -c "$B/ndf.conf" serve 2>"$B/serve.log" &
    SERVER=$!
    for i in $(seq 1 500); do "$NDF" -c "$B/ndf.conf" ctl ping >/dev/null 2>&1 && break; sleep 0.02; done
    p0=$("$NDF" -c "$B/ndf.conf" ctl ping)
    t0=$(now)
    clients
    t1=$(now)
    p1=$("$NDF" -c "$B/ndf.conf" ctl ping)
    kill "$SERVER"
    wait "$SERVER"
    SERVER=
    rs=$(rate "$N" "$t0" "$t1")
    per=$(printf '%s\n%s\n' "$p0" "$p1" | sed -n 's/.*"transactions":\([0-9]*\),"executions":\([0-9]*\).*/\1 \2/p' |
        awk 'NR == 1 { t = $1; e = $2 } NR == 2 { printf "%.1f", ($2 - e) / ($1 - t) }')
    rbare=$(NDF_BENCH_EXECUTIONS=$N "$HELPER" bare "$B/bare-$sync" "$sync" "$per")
    rbare1=$(NDF_BENCH_EXECUTIONS=$((N / 4)) "$HELPER" bare "$B/bare1-$sync" "$sync" 1)
    printf '  %-7s %12s %10s %10s %14s %10s %16s %10s %10s\n' "$sync" "$rb" "$bper" \
        "$(awk -v a="$rb" -v b="$rbare" 'BEGIN { printf "%.2f", a / b }')" "$rs" \
        "$(awk -v a="$rs" -v b="$rbare" 'BEGIN { printf "%.2f", a / b }')" "$rbare" "$per" "$rbare1"
done
echo "  (per txn: execution ends per transaction, batch's from 'ndf batch -v', serve's"
echo "   from ctl ping; vs bare: the rate over bare SQLite doing the same inserts in"
echo "   transactions of the serve run's mean size; bare@1: one per transaction)"
fi

# ---- ndf list start-up ----
gen_patterns() { # N: a configuration of N no-op patterns p000000...
    awk -v n="$1" -v st="$2" 'BEGIN {
        printf "storage: { path = \"%s\"; };\nconfidence: { threshold = 0.0; };\npatterns = (\n", st
        for (i = 0; i < n; i++)
            printf "  { name = \"p%06d\"; type = \"sequential\"; domains = [ \"web\" ]; params = { steps = ( { name = \"n\"; step = \"noop\"; } ); }; }%s\n", i, i < n - 1 ? "," : ""
        print ");" }' >"$B/list.conf"
}
# REPS command...: "wall W ms, cpu C ms" means over REPS runs after one
# warm-up; cpu (user + system, from GNU time when installed) is what to
# read on a loaded machine, where wall time is mostly waiting for a core
time_cmd() {
    reps=$1
    shift
    "$@" >/dev/null 2>&1
    t0=$(now)
    i=0
    : >"$B/cpu"
    while [ $i -lt "$reps" ]; do
        if [ -x /usr/bin/time ]; then
            /usr/bin/time -a -o "$B/cpu" -f '%U %S' "$@" >/dev/null 2>&1
        else
            "$@" >/dev/null 2>&1
        fi
        i=$((i + 1))
    done
    t1=$(now)
    awk -v a="$t0" -v b="$t1" -v r="$reps" 'BEGIN { printf "wall %.1f ms", (b - a) * 1000 / r }'
    [ -s "$B/cpu" ] && awk '{ c += $1 + $2; n++ } END { printf ", cpu %.1f ms", c * 1000 / n }' "$B/cpu"
}
if part list; then
echo
echo "ndf list with 10,000 patterns (mean of 5):"
gen_patterns 10000 "$B/list-empty"
empty=$(time_cmd 5 "$NDF" -c "$B/list.conf" list)
t0=$(now)
"$HELPER" fill "$B/list-full" 10000 "$HIST"
t1=$(now)
gen_patterns 10000 "$B/list-full"
full=$(time_cmd 5 "$NDF" -c "$B/list.conf" list)
echo "  empty history:                $empty"
echo "  $HIST executions per pattern:    $full   ($((HIST * 10000)) stored, filled in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }') s)"
echo "  check-config of the same file: $(time_cmd 5 "$NDF" -c "$B/list.conf" check-config)"
rm -rf "$B/list-empty" "$B/list-full"
fi

# ---- one ndf run as a whole process ----
# mean wall and CPU (user + system) of each command from hyperfine's JSON
# export, then run nop / make
if part one; then
echo
ISOLATION=process
conf normal "$B/st-one"
cp "$B/ndf.conf" "$B/iso.conf"
ISOLATION=none
conf normal "$B/st-one"
cp "$B/ndf.conf" "$B/one.conf"
"$NDF" -c "$B/one.conf" run nop >/dev/null 2>&1 # the store exists, the verdicts are cached
"$NDF" -c "$B/iso.conf" run nop >/dev/null 2>&1
printf 'all:\n\t@/bin/true\n' >"$B/one.mk"
RUNS=${NDF_BENCH_RUNS:-100}
echo "one process, mean of $RUNS (wall ms / cpu ms = user + system):"
set -- "$NDF -c $B/one.conf run nop" "make -s -f $B/one.mk" "$NDF --version" \
    "$NDF -c $B/one.conf check-config" "$NDF -c $B/one.conf plugins" \
    "$NDF -c $B/one.conf list" "$NDF -c $B/iso.conf run nop"
if command -v hyperfine >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
    hyperfine -N --warmup 5 --runs "$RUNS" --style none --export-json "$B/one.json" "$@" \
        >/dev/null 2>&1
    python3 - "$B/one.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
names = ["ndf run nop", "make -s -f one.mk", "ndf --version", "ndf check-config",
         "ndf plugins", "ndf list", "ndf run nop, step isolated"]
rows = []
for name, x in zip(names, r):
    wall = x["mean"] * 1000
    cpu = (x["user"] + x["system"]) * 1000
    rows.append((name, wall, cpu))
    print("  %-28s wall %8.1f ms   cpu %6.1f ms" % (name, wall, cpu))
print("  ndf run / make:              wall %.2fx         cpu %.2fx   (goal <= 2x)"
      % (rows[0][1] / rows[1][1], rows[0][2] / rows[1][2]))
PY
else
    for c in "$@"; do
        # shellcheck disable=SC2086
        printf '  %-60s %8s\n' "$c" "$(time_cmd "$RUNS" $c)"
    done
    echo "  (hyperfine or python3 missing: no ratio computed)"
fi
fi

# ---- a 10,000-task parallel pattern, 50 runs ----
part wide || exit 0
echo
awk -v st="$B/st-wide" 'BEGIN {
    printf "storage: { path = \"%s\"; history_limit = 1000; };\nconfidence: { threshold = 0.0; };\nexecutor: { threads = 2; };\n", st
    printf "patterns = ( { name = \"wide\"; type = \"parallel\"; params = { max_concurrent = 64; tasks = (\n"
    for (i = 0; i < 10000; i++) printf "  { name = \"t%05d\"; step = \"noop\"; }%s\n", i, i < 9999 ? "," : ""
    print ") ; }; } );" }' >"$B/wide.conf"
echo '10,000-task parallel pattern, ndf run 50 times (wall s / cpu s):'
i=0
while [ $i -lt 50 ]; do
    i=$((i + 1))
    t0=$(now)
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -o "$B/cpu" -f '%U %S' "$NDF" -c "$B/wide.conf" run wide >/dev/null 2>&1 ||
            echo " (run $i failed)"
    else
        "$NDF" -c "$B/wide.conf" run wide >/dev/null 2>&1 || echo " (run $i failed)"
    fi
    t1=$(now)
    case $i in 1 | 2 | 10 | 25 | 49 | 50)
        printf '  #%-2d %s' $i "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
        [ -s "$B/cpu" ] && awk '{ printf " / %.3f", $1 + $2 }' "$B/cpu"
        echo ;;
    esac
done
