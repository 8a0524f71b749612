#!/bin/sh
# The commands against a PostgreSQL store (storage.backend = "postgresql"):
# run, runs, status, logs, export, analytics, reset-stats, cleanup; backup
# and restore refused with the tool to use; concurrent one-shot runs whose
# counts equal the execution rows; the password never shown.  In a build
# without libpq, the configuration error that says how to get the backend.
. "$top_srcdir/tests/shell/lib.sh"
. "$top_srcdir/tests/shell/pglib.sh"

CONF=$SCRATCH/ndf.conf
write_conf() { # conninfo
    cat >"$CONF" <<EOF2
storage: { path = "$SCRATCH/state"; backend = "postgresql"; conninfo = "$1"; history_limit = 100; };
confidence: { threshold = 0.0; };
patterns = (
    { name = "deploy"; type = "sequential"; domains = [ "web" ];
      params = { steps = ( { name = "a"; step = "exec"; params = { argv = [ "echo", "from a" ]; }; },
                           { name = "b"; step = "noop"; } ); }; },
    { name = "broken"; type = "sequential";
      params = { steps = ( { name = "x"; step = "exec"; params = { argv = [ "false" ]; }; } ); }; }
);
EOF2
}
ndf() { "$NDF" -c "$CONF" "$@"; }

if [ "${NDF_HAVE_POSTGRESQL:-no}" != yes ]; then
    write_conf "dbname=x"
    expect_exit 2 "without libpq, backend postgresql is refused" -- ndf runs
    expect_match "$err" "ndf.conf:1: 'storage.backend' is 'postgresql', but this ndf was built without PostgreSQL support.*libpq-dev" \
        "the error names the line and says what to install"
    finish
    exit
fi

# libpq (and the TLS, Kerberos and LDAP libraries under it) is loaded when
# a PostgreSQL store is opened, not linked: a command on SQLite never maps
# it.  glibc's loader says what it maps under LD_DEBUG=files.
cat >"$SCRATCH/lite.conf" <<EOF2
storage: { path = "$SCRATCH/lite"; };
patterns = ( { name = "n"; type = "sequential"; params = { steps = ( { name = "a"; step = "noop"; } ); }; } );
EOF2
maps=$(LD_DEBUG=files "$NDF" -c "$SCRATCH/lite.conf" runs 2>&1 >/dev/null)
case $maps in
*"file=libc.so"*)
    case $maps in
    *libpq*) not_ok "a command on SQLite maps libpq" ;;
    *) ok "a command on SQLite does not map libpq" ;;
    esac ;;
*) ok "# SKIP the loader does not report what it maps (not glibc)" ;;
esac

pg_start
pg_sql postgres "CREATE DATABASE ndfcli" >/dev/null
write_conf "host=$PG_DIR user=postgres dbname=ndfcli"
maps=$(LD_DEBUG=files "$NDF" -c "$CONF" runs 2>&1 >/dev/null)
case $maps in
*"file=libc.so"*)
    expect_match "$maps" 'file=libpq[.]so[.0-9]* .*dynamically loaded' \
        "a command on PostgreSQL loads libpq when it opens the store" ;;
esac

expect_exit 0 "run records in PostgreSQL" -- ndf run deploy
expect_exit 1 "a failing run" -- ndf run broken
expect_match "$(pg_sql ndfcli "SELECT count(*) FROM executions")" '^2$' "two execution rows"
[ ! -e "$SCRATCH/state/ndf.db" ] && ok "no SQLite file was made" || not_ok "an ndf.db appeared"

expect_exit 0 "runs" -- ndf runs
expect_match "$out" 'broken +FAILED' "runs lists the failure"
expect_match "$out" 'deploy +SUCCEEDED' "runs lists the success"
id=$(ndf runs deploy --json | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -1)
[ -n "$id" ] && ok "runs --json gives the id" || not_ok "no id in runs --json"
expect_exit 0 "status ID" -- ndf status "$id"
expect_match "$out" 'SUCCEEDED' "status shows the end"
expect_exit 0 "logs ID STEP" -- ndf logs "$id" a
expect_match "$out" '^from a$' "logs reads the step's output back"
expect_exit 3 "status of an unknown id" -- ndf status no-such-id
expect_exit 0 "export json" -- ndf export deploy
expect_match "$out" '"format":[[:space:]]*"ndf-export"' "export works"
expect_exit 0 "export csv" -- ndf export deploy --format csv
expect_match "$(printf '%s\n' "$out" | wc -l)" '^ *2$' "csv: header and one row"
expect_exit 0 "analytics" -- ndf analytics deploy
expect_match "$out" '^Executions: +1 \(1 succeeded' "analytics reads the shared counts"

# several processes at once: counts equal rows, exactly
for loop in 1 2 3 4; do
    (for i in 1 2 3 4 5 6 7 8 9 10; do ndf run deploy >/dev/null 2>"$SCRATCH/err$loop.$i" || echo fail; done) \
        >"$SCRATCH/loop$loop" &
done
wait
if cat "$SCRATCH"/loop* | grep -q fail; then
    not_ok "a concurrent run failed"
    cat "$SCRATCH"/err* | sort | uniq -c | head -5 | sed 's/^/#   /'
else
    ok "40 concurrent runs succeeded"
fi
expect_match "$(pg_sql ndfcli "SELECT executions FROM patterns WHERE name = 'deploy'")" '^41$' \
    "the stored count is exact"
expect_match "$(pg_sql ndfcli "SELECT count(*) FROM executions WHERE pattern = 'deploy' AND counted = 1")" \
    '^41$' "and equals the execution rows"

# ndf serve records through the shared store too, beside one-shot runs
cat >>"$CONF" <<EOF2
server: { socket = "$SCRATCH/ndf.sock"; };
EOF2
"$NDF" -c "$CONF" serve --grace 10 2>"$SCRATCH/serve.log" &
SERVER=$!
for i in $(seq 1 200); do
    ndf ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
(for i in 1 2 3 4 5; do ndf ctl run deploy >/dev/null 2>&1 || echo fail; done) >"$SCRATCH/c1" &
L1=$!
(for i in 1 2 3 4 5; do ndf ctl run deploy >/dev/null 2>&1 || echo fail; done) >"$SCRATCH/c2" &
L2=$!
for i in 1 2 3 4 5; do ndf run deploy >/dev/null 2>&1 || echo fail; done >"$SCRATCH/c3"
wait "$L1" "$L2"
if cat "$SCRATCH"/c1 "$SCRATCH"/c2 "$SCRATCH"/c3 | grep -q fail; then
    not_ok "ctl runs beside one-shot runs"
    sed 's/^/#   serve: /' "$SCRATCH/serve.log" | tail -20
else
    ok "ctl runs beside one-shot runs succeeded"
fi
kill -TERM "$SERVER"
wait "$SERVER" && ok "the server stopped cleanly" || not_ok "the server's exit status"
expect_match "$(pg_sql ndfcli "SELECT executions FROM patterns WHERE name = 'deploy'")" '^56$' \
    "serve and one-shot runs counted exactly"
expect_match "$(pg_sql ndfcli "SELECT count(*) FROM executions WHERE pattern = 'deploy' AND origin = 'ctl'")" \
    '^10$' "the ctl runs are recorded as such"

expect_exit 0 "reset-stats" -- ndf reset-stats deploy
expect_match "$(pg_sql ndfcli "SELECT executions FROM patterns WHERE name = 'deploy'")" '^0$' \
    "the count is reset"
expect_exit 0 "cleanup" -- ndf cleanup
expect_exit 2 "backup is refused" -- ndf backup
expect_match "$err" 'pg_dump' "backup names PostgreSQL's tool"
expect_exit 2 "restore is refused" -- ndf restore "$SCRATCH/none.db.gz"
expect_match "$err" 'pg_restore' "restore names PostgreSQL's tool"

# an unreachable server: exit 8, and a password in the string never shown
write_conf "host=$PG_DIR/nowhere port=1 user=postgres dbname=ndfcli password=s3cr3tpw"
expect_exit 8 "an unreachable server exits 8" -- ndf runs
expect_match "$err" 'cannot connect' "the error says it cannot connect"
printf '%s' "$err" | grep -q s3cr3tpw && not_ok "the password was shown" || ok "no password in the error"
expect_exit 0 "config" -- ndf config --json
printf '%s' "$out" | grep -q s3cr3tpw && not_ok "ndf config shows the password" ||
    ok "ndf config hides the password"
expect_match "$out" '"backend":"postgresql","conninfo":"\(hidden' "ndf config says it is hidden"
finish
