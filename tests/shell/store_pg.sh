#!/bin/sh
# The store's and the queue's Check suites (tests/check_store.c,
# tests/check_queue.c) against the PostgreSQL backend: its conformance cases, each in a database of its own on a
# private server, and PostgreSQL's own cases (schema, refusals, a lost
# connection, secrets kept out of messages).
. "$top_srcdir/tests/shell/lib.sh"
. "$top_srcdir/tests/shell/pglib.sh"
pg_start

if NDF_TEST_PG_CONNINFO="host=$PG_DIR user=postgres" "$top_builddir/tests/check_store" \
    >"$SCRATCH/out" 2>&1; then
    ok "the store suite passes against PostgreSQL"
else
    not_ok "the store suite against PostgreSQL"
fi
sed 's/^/# /' "$SCRATCH/out"
grep -q 'store (postgresql)' "$SCRATCH/out" && ok "it ran the PostgreSQL suite" ||
    not_ok "it ran the PostgreSQL suite"

if NDF_TEST_PG_CONNINFO="host=$PG_DIR user=postgres" "$top_builddir/tests/check_queue" \
    >"$SCRATCH/out" 2>&1; then
    ok "the queue suite passes against PostgreSQL"
else
    not_ok "the queue suite against PostgreSQL"
fi
sed 's/^/# /' "$SCRATCH/out"
grep -q 'queue (postgresql)' "$SCRATCH/out" && ok "it ran the PostgreSQL queue suite" ||
    not_ok "it ran the PostgreSQL queue suite"
finish
