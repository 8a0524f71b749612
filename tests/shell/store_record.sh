#!/bin/sh
# What every execution owes the store, whoever starts it, on each backend
# (SQLite, and PostgreSQL when a server can be started):
# - `ndf batch` writes each execution's RUNNING row and its step process
#   groups before its steps run, so a SIGKILLed batch leaves CRASHED rows
#   and no step processes once the next ndf opens the store;
# - a crashed execution ends at its last heartbeat, not at its start;
# - `ndf serve` judges and shows the counts the store holds: one-shot runs
#   by other processes count for its confidence gate, `ctl list` and
#   `ctl analytics`;
# - an execution whose RUNNING row cannot be written does not run: `ndf
#   serve` answers the storage error (exit 8) as `ndf run` does, says it
#   once, and `ctl status` shows the store degraded until a write succeeds.
# - an execution whose end cannot be written (the disk filled while it
#   ran) ends FAILED "not recorded: ..." with its steps' final states, not
#   CRASHED by the next command's recovery; the error is said once, even
#   under -q  When the disk has no room left for that "not recorded"
#   mark either, the end goes into the preallocated unrecorded-end note
#   and the next command's recovery writes it (SQLite).
# The full disk is a small tmpfs (root only; skipped otherwise); on
# PostgreSQL a trigger raises the server's own disk_full error.
. "$top_srcdir/tests/shell/lib.sh"

CONF=$SCRATCH/ndf.conf
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
export NDF_CGROUP=off
ndf() { "$NDF" -c "$CONF" "$@"; }

# write_conf STATE_DIR [STORAGE_EXTRA]
write_conf() {
    cat >"$CONF" <<EOF
storage: { path = "$1"; ${2:-} };
confidence: { threshold = 0.5; gate = "enforce"; min_samples = 3; };
executor: { threads = 4; };
patterns = (
    { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; },
    { name = "mark"; type = "sequential";
      params = { steps = ( { name = "m"; step = "exec"; params = { shell = true;
                             command = "echo ran >> $SCRATCH/marks"; }; } ); }; },
    { name = "flaky"; type = "sequential";
      params = { steps = ( { name = "x"; step = "exec"; params = { argv = [ "false" ]; }; } ); }; },
    { name = "hang"; type = "sequential";
      params = { steps = ( { name = "long"; step = "exec"; params = { shell = true;
                             command = "echo \$\$\$\$ >> $SCRATCH/hang.pid; exec sleep 120"; }; } ); }; }
);
EOF
}

SERVER=
start_server() {
    "$NDF" -c "$CONF" serve --grace 1 2>>"$SCRATCH/serve.log" &
    SERVER=$!
    for w in $(seq 1 250); do
        ndf ctl ping >/dev/null 2>&1 && return 0
        sleep 0.02
    done
    return 1
}
stop_server() {
    [ -n "$SERVER" ] || return 0
    ndf ctl shutdown >/dev/null 2>&1
    wait "$SERVER" 2>/dev/null
    SERVER=
}

# ---- a killed batch ----
batch_crash() { # backend name
    rm -f "$SCRATCH/hang.pid"
    printf '{"pattern":"hang"}\n{"pattern":"hang"}\n{"pattern":"nop"}\n' >"$SCRATCH/b.jsonl"
    "$NDF" -c "$CONF" batch "$SCRATCH/b.jsonl" >"$SCRATCH/b.out" 2>"$SCRATCH/b.err" &
    pid=$!
    for w in $(seq 1 250); do
        [ -f "$SCRATCH/hang.pid" ] && [ "$(wc -l <"$SCRATCH/hang.pid")" -ge 2 ] && break
        sleep 0.02
    done
    # while it runs, its executions are in the store (a reader only: no
    # recovery of a live process's rows)
    expect_exit 0 "$1: ndf runs while the batch runs" -- ndf runs hang --status RUNNING --json
    expect_match "$(printf '%s' "$out" | grep -o '"status":"RUNNING"' | wc -l)" '^2$' \
        "$1: both running batch executions have their RUNNING row"
    # past one heartbeat, and the step groups' rows (queued) committed
    sleep 2
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    pids=$(cat "$SCRATCH/hang.pid")
    alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    expect_match "$alive" '^2$' "$1: the steps outlived the SIGKILLed batch (no cgroup)"
    expect_exit 0 "$1: the next ndf recovers the store" -- ndf runs hang --json
    expect_match "$err" "killed [1-9][0-9]* leftover process" "$1: recovery kills the batch's step processes"
    expect_match "$(printf '%s' "$out" | grep -o '"status":"CRASHED"' | wc -l)" '^2$' \
        "$1: both batch executions are CRASHED"
    expect_match "$(printf '%s' "$out" | grep -o '"origin":"batch"' | wc -l)" '^2$' \
        "$1: and say they came from batch"
    # killed 2 s or more after they started: ended at a heartbeat, not at 0 s
    expect_match "$out" '"duration":[1-9][0-9.e+-]*,.*"duration":[1-9]' \
        "$1: a crashed one-step execution lasts until its last heartbeat (>= 1 s), not 0 s"
    gone=0
    for w in $(seq 1 100); do
        alive=0
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && { gone=1; break; }
        sleep 0.02
    done
    [ $gone -eq 1 ] && ok "$1: the batch's step processes are gone" ||
        { not_ok "$1: step processes $pids still run"; for p in $pids; do kill -9 "$p" 2>/dev/null; done; }
}

# ---- the server reads the store's counts ----
served_counts() { # backend name
    start_server || { not_ok "$1: the server did not start"; return; }
    # counted before the server learns of them: one-shot runs elsewhere
    for i in 1 2 3; do
        expect_exit 1 "$1: one-shot run $i of flaky fails" -- ndf run flaky
    done
    expect_exit 4 "$1: ndf ctl run of flaky is refused by the gate on the store's counts" -- \
        ndf ctl run flaky
    expect_match "$err" "confidence" "$1: and says it is the confidence"
    expect_exit 0 "$1: ctl list" -- ndf ctl list --json
    expect_match "$out" '"name":"flaky"[^}]*"executions":3' "$1: ctl list shows the 3 one-shot runs"
    expect_exit 0 "$1: ctl analytics flaky" -- ndf ctl analytics flaky --json
    expect_match "$out" '"execution_count":3' "$1: ctl analytics shows them"
    stop_server
}

# ---- a store that cannot take the RUNNING row ----
# full_on / full_off make the store's writes fail and work again.
refuse_unrecorded() { # backend name
    start_server || { not_ok "$1: the server did not start"; return; }
    expect_exit 0 "$1: a served run is recorded" -- ndf ctl run nop
    acked=$(ndf runs nop --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')
    : >"$SCRATCH/marks"
    full_on
    expect_exit 8 "$1: a full store: ndf ctl run exits 8" -- ndf ctl run mark
    expect_match "$err" "not started: cannot record it" "$1: it says the run did not start, and why"
    expect_match "$(wc -l <"$SCRATCH/marks")" '^0$' "$1: the step did not run"
    expect_exit 0 "$1: ctl status" -- ndf ctl status
    expect_match "$out" "server store: .*: degraded; last error" "$1: ctl status shows the store degraded"
    expect_exit 0 "$1: ctl ping" -- ndf ctl ping
    expect_match "$out" '"store":\{"path":"[^"]*","backend":"[a-z]*","schema":[0-9]*,"state":"degraded","last_error":"' \
        "$1: ping too, with backend, schema, state and the last error"
    stop_server
    full_on # a closing server may have given some space back
    expect_exit 8 "$1: a full store: one-shot ndf run exits 8" -- ndf run mark
    expect_match "$(printf '%s\n' "$err" | grep -c '^ndf')" '^1$' "$1: the storage error is said once"
    expect_match "$(wc -l <"$SCRATCH/marks")" '^0$' "$1: the step did not run either"
    full_off
    start_server || { not_ok "$1: the server did not restart"; return; }
    expect_exit 0 "$1: space back: served runs are recorded" -- ndf ctl run mark
    expect_exit 0 "$1: ctl status" -- ndf ctl status
    expect_match "$out" "server store: .*: ok" "$1: the store is ok again"
    stop_server
    expect_exit 0 "$1: what was acknowledged before is there" -- ndf status "$acked"
}

# ---- an end that could not be written ----
# The execution ran; only its end did not fit.  The next command must not
# call it CRASHED ("process ... died"): its row says it ended, that its
# record was not written and why, and its steps' final states.  -q keeps
# the error that decides the exit status.
unrecorded_end() { # backend conf
    expect_exit 8 "$1: the same with -q: exit 8" -- "$NDF" -q -c "$2" run big
    expect_match "$err" "^ndf: run: not recorded: .*(disk is full|No space left)" \
        "$1: -q still says why the exit status is 8"
    expect_match "$(printf '%s\n' "$err" | wc -l)" '^1$' "$1: once"
    expect_exit 0 "$1: the next command" -- "$NDF" -c "$2" runs big --json
    case $err in *crashed*) not_ok "$1: recovery calls it crashed: $err" ;;
    *) ok "$1: recovery leaves it alone" ;; esac
    case $out in *CRASHED* | *RUNNING*) not_ok "$1: left CRASHED or RUNNING: $out" ;;
    *) ok "$1: neither CRASHED nor RUNNING" ;; esac
    expect_match "$out" '"status":"FAILED"' "$1: it is FAILED"
    expect_match "$out" '"message":"not recorded: [^"]*(disk is full|No space left)[^"]*\(the execution had ended SUCCEEDED\)"' \
        "$1: saying its end was not recorded, why, and how it had ended"
    expect_exit 0 "$1: status of it" -- "$NDF" -c "$2" status
    expect_match "$out" "COMPLETED +pattern big" "$1: its final state"
    case $out in *RUNNING*) not_ok "$1: status shows a node RUNNING: $out" ;;
    *) ok "$1: no node left RUNNING" ;; esac
    # run --json: the error is in the JSON and on stderr, exit 8
    expect_exit 8 "$1: run --json: exit 8" -- "$NDF" -c "$2" run big --json
    expect_match "$err" "^ndf: run: not recorded: .*(disk is full|No space left)" \
        "$1: run --json says the storage error on stderr too"
    expect_match "$out" '"error":"not recorded: ' "$1: and in its JSON"
    # a batch whose item could not be recorded: exit 8, not 1
    printf '{"pattern":"big"}\n' >"$SCRATCH/big.jsonl"
    expect_exit 8 "$1: batch with an item whose end is not recorded: exit 8" -- \
        "$NDF" -c "$2" batch "$SCRATCH/big.jsonl"
    # The disk may be full already when the batch opens the store (how
    # much the runs above left depends on their timing, under ASan most):
    # then no item runs, and exit 8 comes from the open, which says so
    if [ -z "$out" ] && printf '%s' "$err" | grep -q 'cannot open: .*No space left'; then
        ok "# SKIP $1: the disk was full before the batch's item ran (exit 8: $err)"
    else
        expect_match "$out" '"error":"not recorded: ' "$1: its line says why"
    fi
}

# ---- SQLite ----
write_conf "$SCRATCH/state"
batch_crash sqlite
served_counts sqlite
MNT=$SCRATCH/mnt
mkdir "$MNT"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=2m,mode=0700 tmpfs "$MNT" 2>/dev/null; then
    trap 'umount "$MNT" 2>/dev/null; rm -rf "$SCRATCH"' EXIT
    write_conf "$MNT/state"
    expect_exit 0 "sqlite: the store on a small tmpfs" -- ndf run nop
    full_on() {
        dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
        # the WAL and the database may still have free pages: use them up
        for i in $(seq 1 30); do ndf run nop >/dev/null 2>&1 || break; done
    }
    full_off() { rm -f "$MNT/fill"; }
    refuse_unrecorded sqlite
    umount "$MNT"
    # ---- a capture on a full disk ----
    # storage.path fills while two 20 MB streams go through a 16 MiB
    # output_limit: the spill files move to $TMPDIR (memory stays bounded,
    # not 2 x 16 MiB compressed), and the end that cannot be written says
    # the disk is full (not a missing savepoint).
    mount -t tmpfs -o size=8m,mode=0700 tmpfs "$MNT"
    BIGCONF=$SCRATCH/big.conf
    cat >"$BIGCONF" <<EOF
storage: { path = "$MNT/state"; };
patterns = (
    { name = "big"; type = "sequential";
      params = { steps = ( { name = "s"; step = "exec"; params = { shell = true;
          output_limit = 16777216;
          command = "head -c 20000000 /dev/urandom; head -c 20000000 /dev/urandom >&2"; }; } ); }; }
);
EOF
    sed "s|$MNT/state|$SCRATCH/bigstate|" "$BIGCONF" >"$SCRATCH/bignormal.conf"
    rss() { # conf: max RSS (KiB) of one run of big; its stderr in $SCRATCH/big.err
        TMPDIR=$SCRATCH /usr/bin/time -f 'rss %M' -o "$SCRATCH/rss" "$NDF" -c "$1" run big \
            >/dev/null 2>"$SCRATCH/big.err"
        brc=$?
    }
    if [ -x /usr/bin/time ]; then
        rss "$SCRATCH/bignormal.conf"
        normal=$(sed -n 's/^rss //p' "$SCRATCH/rss")
        rss "$BIGCONF"
        full=$(sed -n 's/^rss //p' "$SCRATCH/rss")
        expect_match "$brc" '^8$' "sqlite: a capture whose store fills: exit 8"
        # Under AddressSanitizer freed memory sits in its quarantine (256
        # MiB) and the peak RSS of two runs differs by tens of MiB with no
        # difference in what they hold: the plain build measures it.
        if [ -n "${NDF_SAN_CFLAGS:-}" ]; then
            ok "# SKIP sqlite: a full storage.path's memory in a sanitizer build ($full KiB, $normal KiB on a normal disk)"
        else
            [ "${full:-999999}" -le $((${normal:-0} + 10240)) ] &&
                ok "sqlite: a full storage.path costs no memory ($full KiB, $normal KiB on a normal disk)" ||
                not_ok "sqlite: a full storage.path: max RSS $full KiB, $normal KiB on a normal disk"
        fi
        err=$(cat "$SCRATCH/big.err")
        expect_match "$err" "not recorded: .*database or disk is full" "sqlite: it says the disk is full"
        case $err in *savepoint*) not_ok "sqlite: the error names a savepoint: $err" ;;
        *) ok "sqlite: not a missing savepoint" ;; esac
    else
        echo "# SKIP capture on a full disk: no /usr/bin/time"
    fi
    TMPDIR=$SCRATCH unrecorded_end sqlite "$BIGCONF"
    umount "$MNT"
    # ---- progress writes that fail before the end does ----
    # the disk fills while the step runs: heartbeat and progress writes
    # fail, then the end; the error is said once, -q or not
    mount -t tmpfs -o size=4m,mode=0700 tmpfs "$MNT"
    SLOWCONF=$SCRATCH/slow.conf
    cat >"$SLOWCONF" <<EOF
storage: { path = "$MNT/state"; };
patterns = (
    { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; },
    { name = "slow"; type = "sequential";
      params = { steps = ( { name = "s"; step = "exec"; params = { shell = true;
          output_limit = 2000000;
          command = "echo > $SCRATCH/slow.started; while [ ! -f $SCRATCH/slow.go ]; do sleep 0.05; done; head -c 1500000 /dev/urandom; sleep 1.5; head -c 1500000 /dev/urandom >&2"; }; } ); }; }
);
EOF
    for q in "" -q; do
        rm -f "$MNT/fill" "$SCRATCH/slow.started" "$SCRATCH/slow.go"
        "$NDF" -c "$SLOWCONF" run nop >/dev/null 2>&1
        TMPDIR=$SCRATCH "$NDF" $q -c "$SLOWCONF" run slow >/dev/null 2>"$SCRATCH/slow.err" &
        spid=$!
        for w in $(seq 1 250); do [ -f "$SCRATCH/slow.started" ] && break; sleep 0.02; done
        dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
        : >"$SCRATCH/slow.go"
        wait "$spid"
        src=$?
        expect_match "$src" '^8$' "sqlite: run $q: the disk fills while it runs: exit 8"
        expect_match "$(grep -c 'disk is full' "$SCRATCH/slow.err")" '^1$' \
            "sqlite: run $q: the full disk is said once (not per heartbeat and progress write)"
        expect_match "$(cat "$SCRATCH/slow.err")" "ndf: run: not recorded: .*disk is full" \
            "sqlite: run $q: in the error that decides the exit status"
        [ -z "$q" ] || expect_match "$(wc -l <"$SCRATCH/slow.err")" '^1$' "sqlite: run -q: that line alone"
    done
    umount "$MNT"
    # ---- an end that neither commits nor can be marked ----
    # the disk fills from outside while the step runs and nothing is left
    # to reuse: the end and the smaller "not recorded" mark both fail; the
    # end goes into the preallocated note, and the next command's recovery
    # ends the row FAILED "not recorded" instead of calling it crashed
    mount -t tmpfs -o size=2m,mode=0700 tmpfs "$MNT"
    NOTECONF=$SCRATCH/note.conf
    NOTE=$MNT/state/unrecorded.note
    noted() { grep -a -o NDFUNR1 "$NOTE" | wc -l | tr -d ' '; } # entries (by their magic)
    cat >"$NOTECONF" <<EOF
storage: { path = "$MNT/state"; };
patterns = (
    { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; },
    { name = "wait"; type = "sequential";
      params = { steps = ( { name = "s"; step = "exec"; params = { shell = true;
          command = "echo > $SCRATCH/note.started; while [ ! -f $SCRATCH/note.go ]; do sleep 0.05; done; echo done"; }; } ); }; },
    { name = "wait2"; type = "sequential";
      params = { steps = ( { name = "s"; step = "exec"; params = { shell = true;
          command = "echo > $SCRATCH/note2.started; while [ ! -f $SCRATCH/note2.go ]; do sleep 0.05; done"; }; } ); }; }
);
EOF
    expect_exit 0 "sqlite note: the store on a small tmpfs" -- "$NDF" -c "$NOTECONF" run nop
    expect_match "$(stat -c '%a %s' "$NOTE" 2>&1)" '^600 32768$' \
        "sqlite note: preallocated beside the database, owner only"
    "$NDF" -c "$NOTECONF" run wait >/dev/null 2>"$SCRATCH/note.err" &
    npid=$!
    for w in $(seq 1 250); do [ -f "$SCRATCH/note.started" ] && break; sleep 0.02; done
    dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
    for i in $(seq 1 "${NDF_TEST_FULL_RUNS:-30}"); do
        "$NDF" -c "$NOTECONF" run nop >/dev/null 2>&1 || break
    done
    : >"$SCRATCH/note.go"
    wait "$npid"
    expect_match "$?" '^8$' "sqlite note: end and mark fail: exit 8"
    expect_match "$(grep -c 'not recorded' "$SCRATCH/note.err")" '^1$' "sqlite note: one 'not recorded' line"
    nid=$(sed -n 's/.*(execution \([^)]*\)).*/\1/p' "$SCRATCH/note.err" | head -n 1)
    # the row could not be marked: without the note it stays RUNNING and
    # the next command calls it crashed
    expect_match "$(grep -a -c "${nid:-none}" "$NOTE")" '^1$' "sqlite note: the mark failed too, the end is in the note"
    rm -f "$MNT/fill"
    expect_exit 0 "sqlite note: the next command" -- "$NDF" -c "$NOTECONF" runs wait --json
    case $err in *crash*) not_ok "sqlite note: recovery calls it crashed: $err" ;;
    *) ok "sqlite note: no crashed warning" ;; esac
    expect_exit 0 "sqlite note: status of it" -- "$NDF" -c "$NOTECONF" status "${nid:-none}"
    expect_match "$out" "^execution $nid: FAILED" "sqlite note: it is FAILED"
    expect_match "$out" 'not recorded: .*disk is full \(the execution had ended SUCCEEDED\)' \
        "sqlite note: saying its end was not recorded, why, and how it had ended"
    expect_match "$(grep -a -c "${nid:-none}" "$NOTE")" '^0$' "sqlite note: its slot is freed once the row is written"
    # a slot whose row was written (a recovery that died before it freed
    # it) is freed by the next recovery once its process is gone; one of a
    # live process is kept
    deadpid=$(sh -c 'echo $$')
    python3 - "$NOTE" "$deadpid" $$ <<'EOF'
import struct, sys
def slot(pid, eid):
    boot = open('/proc/sys/kernel/random/boot_id').read().strip().encode()
    b = b'NDFUNR1\0' + struct.pack('<qdd', pid, 1.0, 0.5) + b'SUCCEEDED'.ljust(16, b'\0') \
        + eid.encode().ljust(64, b'\0') + boot.ljust(64, b'\0') + b'full'.ljust(328, b'\0')
    h = 1469598103934665603
    for c in b:
        h = ((h ^ c) * 1099511628211) & 0xffffffffffffffff
    return b + struct.pack('<Q', h)
with open(sys.argv[1], 'r+b') as f:
    f.seek(5 * 512); f.write(slot(int(sys.argv[2]), 'gone-1'))
    f.seek(6 * 512); f.write(slot(int(sys.argv[3]), 'live-1'))
EOF
    expect_exit 0 "sqlite note: a command after a stale slot" -- "$NDF" -c "$NOTECONF" run nop
    expect_match "$(grep -a -c gone-1 "$NOTE")" '^0$' "sqlite note: the stale slot of a dead process is freed"
    expect_match "$(grep -a -c live-1 "$NOTE")" '^1$' "sqlite note: a live process's slot is kept"
    dd if=/dev/zero of="$NOTE" bs=512 seek=6 count=1 conv=notrunc 2>/dev/null
    # the process that noted an end survives it: when it closes the store
    # (the disk has room again) it writes the mark itself and frees the slot
    rm -f "$SCRATCH/note.started" "$SCRATCH/note.go"
    printf '{"pattern":"wait"}\n{"pattern":"wait2"}\n' >"$SCRATCH/note.jsonl"
    "$NDF" -c "$NOTECONF" batch "$SCRATCH/note.jsonl" >"$SCRATCH/note.out" 2>"$SCRATCH/note.err" &
    npid=$!
    for w in $(seq 1 250); do [ -f "$SCRATCH/note.started" ] && break; sleep 0.02; done
    dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
    for i in $(seq 1 "${NDF_TEST_FULL_RUNS:-30}"); do
        "$NDF" -c "$NOTECONF" run nop >/dev/null 2>&1 || break
    done
    : >"$SCRATCH/note.go"
    for w in $(seq 1 250); do [ "$(noted)" = 1 ] && break; sleep 0.02; done
    expect_match "$(noted)" '^1$' "sqlite note: batch: the first item's end is in the note"
    rm -f "$MNT/fill"
    for w in $(seq 1 250); do [ -f "$SCRATCH/note2.started" ] && break; sleep 0.02; done
    : >"$SCRATCH/note2.go"
    wait "$npid"
    expect_match "$?" '^8$' "sqlite note: batch: exit 8"
    expect_match "$(noted)" '^0$' "sqlite note: batch: its close wrote the mark and freed the slot"
    expect_exit 0 "sqlite note: batch: the next command" -- "$NDF" -c "$NOTECONF" runs wait --json
    case $err in *crash*) not_ok "sqlite note: batch: recovery calls it crashed: $err" ;;
    *) ok "sqlite note: batch: no crashed warning" ;; esac
    expect_match "$out" '^\[\{"id":"[^"]*","pattern":"wait","status":"FAILED".*"message":"not recorded: [^"]*disk is full \(the execution had ended SUCCEEDED\)"' \
        "sqlite note: batch: the item is FAILED, not recorded"
    # a hostile note is refused with a warning, never trusted
    rm -f "$NOTE"
    ln -s "$SCRATCH/elsewhere" "$NOTE"
    expect_exit 0 "sqlite note: a symlink in its place" -- "$NDF" -c "$NOTECONF" run nop
    expect_match "$err" "unrecorded.note: cannot open" "sqlite note: the symlink is refused"
    [ ! -e "$SCRATCH/elsewhere" ] && ok "sqlite note: nothing created through it" ||
        not_ok "sqlite note: a file was created through the symlink"
    rm -f "$NOTE"
    head -c 1000 /dev/zero >"$NOTE"
    expect_exit 0 "sqlite note: the wrong size" -- "$NDF" -c "$NOTECONF" run nop
    expect_match "$err" "unrecorded.note: ignored: 1000 bytes" "sqlite note: the wrong size is refused"
    head -c 32768 /dev/urandom >"$NOTE"
    expect_exit 0 "sqlite note: garbage" -- "$NDF" -c "$NOTECONF" run nop
    expect_match "$err" "unrecorded.note: 64 unreadable slot" "sqlite note: garbage is said and ignored"
    umount "$MNT"
else
    echo "# SKIP sqlite full store: mounting a tmpfs needs root"
fi

# ---- PostgreSQL ----
if [ "${NDF_HAVE_POSTGRESQL:-no}" = yes ] && [ -x "${NDF_TEST_PG_BINDIR:-/usr/lib/postgresql/15/bin}/initdb" ]; then
    . "$top_srcdir/tests/shell/pglib.sh"
    pg_start
    for db in pgcrash pgcounts pgfull; do pg_sql postgres "CREATE DATABASE $db" >/dev/null; done
    write_conf "$SCRATCH/pgstate" "backend = \"postgresql\"; conninfo = \"host=$PG_DIR user=postgres dbname=pgcrash\";"
    batch_crash postgresql
    write_conf "$SCRATCH/pgstate" "backend = \"postgresql\"; conninfo = \"host=$PG_DIR user=postgres dbname=pgcounts\";"
    served_counts postgresql
    write_conf "$SCRATCH/pgstate" "backend = \"postgresql\"; conninfo = \"host=$PG_DIR user=postgres dbname=pgfull\";"
    expect_exit 0 "postgresql: the schema is made" -- ndf run nop
    # the server's own disk_full error, from a trigger
    full_on() {
        pg_sql pgfull "CREATE OR REPLACE FUNCTION ndf_full() RETURNS trigger LANGUAGE plpgsql AS
            \$\$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'
                 USING ERRCODE = 'disk_full'; END \$\$;
            DROP TRIGGER IF EXISTS ndf_full ON executions;
            CREATE TRIGGER ndf_full BEFORE INSERT ON executions FOR EACH ROW EXECUTE FUNCTION ndf_full();" >/dev/null
    }
    full_off() { pg_sql pgfull "DROP TRIGGER ndf_full ON executions" >/dev/null; }
    refuse_unrecorded postgresql
    # an end whose outputs cannot be written (progress writes of outputs
    # fail too): what crash recovery and -q make of it
    pg_sql postgres "CREATE DATABASE pgend" >/dev/null
    cat >"$SCRATCH/pgbig.conf" <<EOF
storage: { path = "$SCRATCH/pgstate"; backend = "postgresql"; conninfo = "host=$PG_DIR user=postgres dbname=pgend"; };
patterns = (
    { name = "big"; type = "sequential";
      params = { steps = ( { name = "s"; step = "exec"; params = { shell = true;
          command = "head -c 100000 /dev/urandom; sleep 0.6; head -c 100000 /dev/urandom >&2"; }; } ); }; }
);
EOF
    expect_exit 0 "postgresql: the schema is made" -- "$NDF" -c "$SCRATCH/pgbig.conf" runs
    pg_sql pgend "CREATE OR REPLACE FUNCTION ndf_full() RETURNS trigger LANGUAGE plpgsql AS
        \$\$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'
             USING ERRCODE = 'disk_full'; END \$\$;
        CREATE TRIGGER ndf_full BEFORE INSERT ON outputs FOR EACH ROW EXECUTE FUNCTION ndf_full();" >/dev/null
    unrecorded_end postgresql "$SCRATCH/pgbig.conf"
else
    echo "# SKIP postgresql: no PostgreSQL server or ndf built without libpq"
fi

finish
