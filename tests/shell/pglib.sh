# A private PostgreSQL 15 server for a shell test, sourced after lib.sh:
# pg_start makes a cluster in a temporary directory (a copy of one initdb
# made for the build tree, see pg_initdb) and starts it on a
# Unix socket there only (no TCP), with trust authentication; it is stopped
# and removed when the test exits, whatever way it exits.  Without the
# server binaries, or with an ndf built without libpq, the test SKIPs
# (exit 77) naming what to install.
#
# After pg_start: PG_DIR (socket directory), PG_CONNINFO (libpq
# connection string of the "postgres" database as superuser "postgres"),
# PG_BIN, and pg_sql DBNAME SQL... to run statements.
PG_BIN=${NDF_TEST_PG_BINDIR:-/usr/lib/postgresql/15/bin}
PG_DIR=
PG_CONNINFO=

pg_skip() {
    printf 'SKIP: %s\n' "$*"
    rm -rf "$SCRATCH"
    exit 77
}

# Runs a server program as the cluster's owner: postgres refuses to run as
# root, so under root it runs as the Debian package's "postgres" user.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_stop() {
    [ -n "$PG_DIR" ] || return 0
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
        pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
    fi
    rm -rf "$PG_DIR"
    PG_DIR=
}

# initdb takes seconds; a copy of a fresh cluster a fraction of one.  The
# first test of a build tree to need a cluster makes it with initdb and
# leaves a copy in $top_builddir/tests/pg-template (with the initdb
# --version it came from: under another server the tests run initdb each,
# until `make clean` removes the copy); the others copy that.  Tests running at once may each make one: the first
# rename wins.  NDF_TEST_PG_FRESH=1 runs initdb every time.
pg_initdb() {
    _tmpl=$top_builddir/tests/pg-template
    _ver=$("$PG_BIN/initdb" --version 2>/dev/null)
    if [ "${NDF_TEST_PG_FRESH:-0}" != 1 ] && [ -n "$_ver" ] && [ -f "$_tmpl/PG_VERSION" ] &&
        [ "$(cat "$_tmpl/.ndf-initdb" 2>/dev/null)" = "$_ver" ] &&
        cp -a "$_tmpl" "$PG_DIR/data" 2>/dev/null; then
        rm -f "$PG_DIR/data/.ndf-initdb"
        return 0
    fi
    rm -rf "$PG_DIR/data"
    if ! pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 \
        --locale=C --no-sync >"$PG_DIR/initdb.log" 2>&1; then
        sed 's/^/#   initdb: /' "$PG_DIR/initdb.log"
        echo "Bail out! initdb failed"
        exit 99
    fi
    [ "${NDF_TEST_PG_FRESH:-0}" != 1 ] && [ -n "$_ver" ] && [ ! -e "$_tmpl" ] || return 0
    # published whole or not at all: a copy made aside, then renamed
    if cp -a "$PG_DIR/data" "$_tmpl.$$" 2>/dev/null &&
        printf '%s\n' "$_ver" >"$_tmpl.$$/.ndf-initdb" &&
        mv -T "$_tmpl.$$" "$_tmpl" 2>/dev/null; then
        :
    else
        rm -rf "$_tmpl.$$"
    fi
}

pg_start() {
    [ "${NDF_HAVE_POSTGRESQL:-no}" = yes ] ||
        pg_skip "ndf was built without PostgreSQL (apt-get install libpq-dev, then configure --with-postgresql)"
    [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] ||
        pg_skip "no PostgreSQL 15 server in $PG_BIN (Debian: apt-get install postgresql-15)"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 ||
            pg_skip "running as root and there is no 'postgres' user to run the server as (apt-get install postgresql-15 creates it)"
        command -v runuser >/dev/null 2>&1 || pg_skip "running as root without runuser(1)"
    fi
    # short: a socket path is limited to 107 bytes
    PG_DIR=$(mktemp -d /tmp/ndfpg.XXXXXX) || pg_skip "cannot create a temporary directory"
    trap 'pg_stop; rm -rf "$SCRATCH"' EXIT
    trap 'exit 130' INT TERM HUP
    chmod 755 "$PG_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres "$PG_DIR"
    pg_initdb
    # fsync off: a test server need not survive a power cut (the benchmark's does)
    if ! pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses='' -k $PG_DIR -c max_connections=100 -c fsync=${PG_FSYNC:-off}" \
        start >/dev/null 2>&1; then
        sed 's/^/#   server: /' "$PG_DIR/server.log"
        echo "Bail out! the PostgreSQL server did not start"
        exit 99
    fi
    PG_CONNINFO="host=$PG_DIR user=postgres dbname=postgres"
}

# pg_sql DBNAME SQL: runs SQL on DBNAME through psql, unaligned, tuples only.
pg_sql() {
    db=$1
    shift
    "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DIR" -U postgres -d "$db" -c "$*"
}
