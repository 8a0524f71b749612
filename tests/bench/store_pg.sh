#!/bin/sh
# `make bench`: starts a private PostgreSQL 15 (fsync on, as in production)
# and runs bench_store_pg against it beside SQLite.  Skipped, with the
# reason, without the server or an ndf built with libpq.
. "$top_srcdir/tests/shell/lib.sh"
. "$top_srcdir/tests/shell/pglib.sh"
if [ ! -x "$top_builddir/tests/bench/bench_store_pg" ]; then
    echo "store backends: skipped (ndf was built without PostgreSQL)"
    exit 0
fi
NDF_HAVE_POSTGRESQL=yes
pg_skip() { echo "store backends: skipped ($*)"; exit 0; }
PG_FSYNC=on pg_start
NDF_BENCH_PG_CONNINFO="host=$PG_DIR user=postgres" "$top_builddir/tests/bench/bench_store_pg"
