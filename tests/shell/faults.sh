#!/bin/sh
# Storage faults from the command line: the database file replaced by a
# symlink, a FIFO, a directory, a truncated or a corrupt file; a full disk
# (a 1 MiB tmpfs) and a read-only file system (the tmpfs remounted; both
# skipped, saying so, where mounting is not permitted); the storage directory deleted under `ndf serve`
# (recreated with what it held) or replaced by a file (degraded, with its last error in ping).
# Each gives its clear error and exit 8, never a result that was not
# recorded, and what was acknowledged before is still there afterwards.
. "$top_srcdir/tests/shell/lib.sh"

PROBE=$top_builddir/tests/store_probe
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
# conf DIR: a configuration storing in DIR
conf() {
    cat >"$SCRATCH/ndf.conf" <<EOF
storage: { path = "$1"; };
confidence: { threshold = 0.0; };
patterns = (
    { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "log"; params = { message = "hello"; }; } ); }; }
);
EOF
}
ndf() { "$NDF" -c "$SCRATCH/ndf.conf" "$@"; }
STATE=$SCRATCH/state
DB=$STATE/ndf.db
conf "$STATE"

expect_exit 0 "a first run is recorded" -- ndf run nop
first=$(ndf runs --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')
expect_exit 0 "a backup to restore from" -- ndf backup
mv "$DB" "$SCRATCH/good.db"
rm -f "$DB-wal" "$DB-shm"

# restore_good: the database as it was
restore_good() {
    rm -rf "$DB" "$DB-wal" "$DB-shm"
    cp "$SCRATCH/good.db" "$DB"
}

# ---- the file replaced ----
ln -s "$SCRATCH/good.db" "$DB"
expect_exit 8 "a symlink in place of the database: exit 8" -- ndf run nop
expect_match "$err" "ndf.db.*symbolic link" "it says the database is a symlink"
rm -f "$DB"
mkfifo "$DB"
expect_exit 8 "a FIFO in place of the database: exit 8" -- ndf run nop
expect_match "$err" "ndf.db.*(FIFO|not a regular file)" "it says what it found"
rm -f "$DB"
mkdir "$DB"
expect_exit 8 "a directory in place of the database: exit 8" -- ndf run nop
expect_match "$err" "ndf.db.*(directory|not a regular file)" "it says it is a directory"
rmdir "$DB"
restore_good
size=$(wc -c <"$DB")
head -c $((size / 3)) "$SCRATCH/good.db" >"$DB"
expect_exit 8 "a truncated database: exit 8" -- ndf run nop
expect_match "$err" "ndf.db.*(corrupt|malformed|not a database)" "it says the database is damaged"
expect_match "$err" "backups/ndf-.*\.db\.gz" "and names the newest backup to restore"
rm -f "$STATE"/ndf.db*
restore_good
printf 'this is not a database at all, only text that fills the header page...' |
    dd of="$DB" bs=1 seek=0 conv=notrunc 2>/dev/null
expect_exit 8 "a corrupt database: exit 8" -- ndf run nop
expect_match "$err" "ndf.db.*(corrupt|not a database|not an ndf database)" "it says the file is not a usable database"
rm -f "$STATE"/ndf.db*
restore_good
expect_exit 0 "the good database serves again" -- ndf status "$first"

# ---- a full disk, a read-only file system ----
MNT=$SCRATCH/mnt
mkdir "$MNT"
if mount -t tmpfs -o size=1m,mode=0700 tmpfs "$MNT" 2>/dev/null; then
    trap 'umount "$MNT" 2>/dev/null; rm -rf "$SCRATCH"' EXIT
    conf "$MNT/state"
    expect_exit 0 "tmpfs: a run recorded" -- ndf run nop
    acked=$(ndf runs --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')
    dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
    rc=0
    for i in 1 2 3 4 5 6 7 8 9 10; do
        ndf run nop >/dev/null 2>"$SCRATCH/full.err" || { rc=$?; break; }
    done
    expect_match "$rc" '^8$' "a full disk: the run exits 8"
    expect_match "$(cat "$SCRATCH/full.err")" "ndf.db.*(full|No space)" "it says the disk is full, naming the database"
    rm -f "$MNT/fill"
    expect_exit 0 "space given back: runs are recorded again" -- ndf run nop
    expect_exit 0 "what was acknowledged before is there" -- ndf status "$acked"
    expect_exit 0 "the invariants hold" -- "$PROBE" "$MNT/state" check
    mount -o remount,ro "$MNT"
    expect_exit 8 "a read-only file system: the run exits 8" -- ndf run nop
    expect_match "$err" "state.*(read-only|Read-only)" "it says the store is on a read-only file system"
    mount -o remount,rw "$MNT"
    expect_exit 0 "writable again: what was acknowledged is there" -- ndf status "$acked"
    expect_exit 0 "and runs are recorded" -- ndf run nop
    umount "$MNT"
else
    # A file size limit (ulimit -f) is no stand-in: it stops the plugin
    # cache's copies before the database, and SQLite's WAL writes start at
    # offset 0.  Without a mount there is no full disk to give ndf.
    echo "# SKIP full disk and read-only file system: mount -t tmpfs is not permitted here"
fi

# ---- the directory deleted under ndf serve ----
conf "$SCRATCH/state3"
# exec: $! must be the server itself, not a subshell running the function
"$NDF" -c "$SCRATCH/ndf.conf" serve 2>"$SCRATCH/serve.log" &
SERVER=$!
for i in $(seq 1 200); do ndf ctl ping >/dev/null 2>&1 && break; sleep 0.02; done
expect_exit 0 "served run recorded" -- ndf ctl run nop
expect_match "$(ndf ctl ping)" '"state":"ok"' "ping: the store is ok"
expect_match "$(ndf ctl ping)" '"store":\{"path":"[^"]*state3/ndf.db","backend":"sqlite","schema":[0-9]+,"state":"ok","last_error":null,"last_error_time":null' \
    "ping: the store's path, backend, schema, state and last error"
rm -rf "$SCRATCH/state3"
# the server recreates it from the copy it still has open: nothing is lost
expect_exit 0 "the store deleted: the next served run is recorded" -- ndf ctl run nop
expect_match "$(ndf ctl ping)" '"state":"ok"' "ping: the store is ok"
[ -f "$SCRATCH/state3/ndf.db" ] && ok "the database file is back" || not_ok "no $SCRATCH/state3/ndf.db"
expect_exit 0 "runs" -- ndf runs nop --json
expect_match "$(printf '%s' "$out" | grep -o '"id"' | wc -l | tr -d ' ')" '^2$' \
    "both runs are in it, the one from before the deletion too"
expect_match "$(cat "$SCRATCH/serve.log")" "warning: .*ndf.db: the database file was removed while in use; recreated it" \
    "the server says so"
# a file put where the directory was is not replaced: a storage error, exit 8
rm -rf "$SCRATCH/state3"
echo x >"$SCRATCH/state3"
expect_exit 8 "the store replaced by a file: a served run is a storage error, exit 8" -- ndf ctl run nop
expect_match "$err" "(not recorded|not started: cannot record it): .*ndf.db" "the answer names the database"
expect_match "$(ndf ctl ping)" '"state":"degraded","last_error":"[^"]*ndf.db[^"]*removed or replaced' \
    "ping: the store is degraded, with the last error"
expect_match "$(cat "$SCRATCH/serve.log")" "error: execution .* not (recorded|started: cannot record it)" "the server logs it as an error"
kill "$SERVER"
wait "$SERVER"
rm -f "$SCRATCH/state3"

finish
