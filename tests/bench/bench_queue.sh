#!/bin/sh
# The work queue end to end (`make bench-queue`, part of `make bench`), each
# figure beside its comparison in the same run:
#  1. executions per second of a one-step no-op pattern through the queue
#     of a private PostgreSQL 15 (fsync on) with 1, 2 and 4 workers
#     (`ndf serve --worker`, 4 threads each) on this machine, the items
#     queued in one statement once the workers are idle, timed from that
#     commit to the last item DONE; beside the same executions through
#     `ndf batch` on the SQLite store of one host;
#  2. claim latency, submit to start: items submitted one at a time
#     (`ndf submit`, a pause between them) to 2 idle workers, the
#     execution's start minus the item's submission (one machine: one
#     clock), p50 and p99, with server.worker_poll 0.5 (the default) and
#     0.05.
# Figures are printed, never asserted.  NDF_BENCH_QUEUE_N (default 2000)
# items per throughput line, NDF_BENCH_QUEUE_LAT (default 100) for the
# latency lines.  Skipped, with the reason, without PostgreSQL.
. "$top_srcdir/tests/shell/lib.sh"
. "$top_srcdir/tests/shell/pglib.sh"
if ! grep -q 'HAVE_LIBPQ 1' "$top_builddir/build-config.h" 2>/dev/null; then
    echo "queue: skipped (ndf was built without PostgreSQL)"
    exit 0
fi
NDF_HAVE_POSTGRESQL=yes
pg_skip() { echo "queue: skipped ($*)"; exit 0; }
N=${NDF_BENCH_QUEUE_N:-2000}
NLAT=${NDF_BENCH_QUEUE_LAT:-100}
export NDF_PLUGIN_PATH=${NDF_PLUGIN_PATH:-$top_builddir/plugins/.libs}
PG_FSYNC=on pg_start
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
WORKERS=
cleanup_workers() {
    for p in $WORKERS; do kill -TERM "$p" 2>/dev/null; done
    for p in $WORKERS; do wait "$p" 2>/dev/null; done
    WORKERS=
}
trap 'cleanup_workers; pg_stop; rm -rf "$SCRATCH"' EXIT

# conf FILE STORAGE [POLL] [SOCKET]
conf() {
    cat >"$1" <<EOF
$2
confidence: { threshold = 0.0; };
executor: { threads = 4; };
server: { worker_poll = ${3:-0.5}; socket = "${4:-$SCRATCH/none.sock}"; };
patterns = ( { name = "noop"; type = "sequential";
               params = { steps = ( { name = "s"; step = "noop"; } ); }; } );
EOF
}

# SQLite, one host: ndf batch of N no-op lines, all at once
conf "$SCRATCH/lite.conf" "storage: { path = \"$SCRATCH/lite\"; history_limit = 1000000; };"
i=0
while [ "$i" -lt "$N" ]; do echo '{"pattern":"noop"}'; i=$((i + 1)); done >"$SCRATCH/batch"
"$NDF" -c "$SCRATCH/lite.conf" -q list >/dev/null 2>&1 # the database and plugin cache made
t0=$(now)
"$NDF" -c "$SCRATCH/lite.conf" -q batch "$SCRATCH/batch" >/dev/null
t1=$(now)
lite=$(rate "$N" "$t0" "$t1")

dbn=0
# start_workers K POLL: K workers on a fresh database ndfbench$dbn, idle
start_workers() {
    dbn=$((dbn + 1))
    pg_sql postgres "CREATE DATABASE ndfbench$dbn" >/dev/null
    k=0
    while [ "$k" -lt "$1" ]; do
        k=$((k + 1))
        conf "$SCRATCH/w$k.conf" "storage: { path = \"$SCRATCH/state\"; backend = \"postgresql\"; history_limit = 1000000;
  conninfo = \"host=$PG_DIR user=postgres dbname=ndfbench$dbn\"; };" "$2" "$SCRATCH/w$k.sock"
        "$NDF" -c "$SCRATCH/w$k.conf" -q serve --worker --no-watch 2>>"$SCRATCH/workers.log" &
        WORKERS="$WORKERS $!"
    done
    t=0
    while [ "$(pg_sql "ndfbench$dbn" "SELECT count(*) FROM workers" 2>/dev/null)" != "$1" ]; do
        sleep 0.05
        t=$((t + 1))
        alive=1
        for p in $WORKERS; do kill -0 "$p" 2>/dev/null || alive=0; done
        [ "$t" -lt 1200 ] && [ "$alive" = 1 ] ||
            { echo "queue: the workers did not start"; tail "$SCRATCH/workers.log"; exit 1; }
    done
}
wait_done() { # DB COUNT
    while [ "$(pg_sql "$1" "SELECT count(*) FROM queue WHERE state = 'DONE'")" -lt "$2" ]; do
        sleep 0.05
    done
}

echo "queue: $N executions of a one-step no-op pattern, 4 threads per worker"
printf '%-28s %12s\n' "how" "executions/s"
printf '%-28s %12s\n' "sqlite, ndf batch, 1 host" "$lite"
for k in 1 2 4; do
    start_workers "$k" 0.05
    d=ndfbench$dbn
    t0=$(now)
    pg_sql "$d" "INSERT INTO queue (id, pattern, context, priority, timeout, submitted, state)
        SELECT 'qb' || g, 'noop', NULL, 0, 0, extract(epoch from clock_timestamp()), 'QUEUED'
        FROM generate_series(1, $N) g" >/dev/null
    wait_done "$d" "$N"
    t1=$(now)
    ok=$(pg_sql "$d" "SELECT count(*) FROM queue WHERE status = 'SUCCEEDED'")
    printf '%-28s %12s   (%s succeeded)\n' "queue, $k worker(s)" "$(rate "$N" "$t0" "$t1")" "$ok"
    cleanup_workers
done

echo "queue: claim latency, submit to start, $NLAT items submitted one at a time to 2 idle workers"
printf '%-28s %10s %10s\n' "poll" "p50 ms" "p99 ms"
for poll in 0.5 0.05; do
    start_workers 2 "$poll"
    d=ndfbench$dbn
    i=0
    while [ "$i" -lt "$NLAT" ]; do
        "$NDF" -c "$SCRATCH/w1.conf" -q submit noop >/dev/null
        sleep 0.03
        i=$((i + 1))
    done
    wait_done "$d" "$NLAT"
    pg_sql "$d" "SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY e.start_time - q.submitted))::text
        || ' ' || round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY e.start_time - q.submitted))::text
        FROM queue q JOIN executions e ON e.id = q.exec_id" |
        { read -r p50 p99; printf '%-28s %10s %10s\n' "worker_poll $poll s" "$p50" "$p99"; }
    cleanup_workers
done
