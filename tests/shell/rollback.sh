#!/bin/sh
# `ndf rollback ID` (one-shot) and `ndf ctl rollback ID`: for each pattern
# type a run whose completed steps append their undo to a log, then a
# rollback: each undo runs once, in the type's order (a sequence newest
# first, a parallel pattern in reverse dependency order, a meta pattern
# phase by phase), the execution is ROLLED_BACK, and a second rollback is
# refused.  Then an undo that fails (FAILED, and a rollback again undoes
# only what is left), the refusals (nothing to undo, already undone when
# it failed, a sub-pattern's execution, unknown id, still running, a
# definition changed since), two one-shots at once and a one-shot beside
# a server's ctl rollback (exactly one wins each time).
. "$top_srcdir/tests/shell/lib.sh"

STATE=$SCRATCH/state
UNDO=$SCRATCH/undo
OKF=$SCRATCH/ok
PIDF=$SCRATCH/undo.pid # the pid of slowundo's undo of u, which waits for $GO ($$$$ in
# its config: ndf reads $$ as a plain $); u runs in a step worker, whose
# processes crash recovery finds by the token below the worker's
GO=$SCRATCH/go
CONF=$SCRATCH/ndf.conf
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
# step NAME [undo-fails-unless-$OKF]: does nothing, its undo logs its name
# (and the execution id for "b", which checks ${execution_id} is the
# original's)
step() {
    u="echo $1 >> $UNDO"
    [ "$1" = b ] && u="echo b \${execution_id} >> $UNDO"
    [ "${2:-}" = fails ] && u="test -e $OKF && echo $1 >> $UNDO"
    printf '{ name = "%s"; step = "exec"; %s params = { shell = true; command = "true"; undo = "%s"; }; }' \
        "$1" "${3:+depends_on = [ \"$3\" ];}" "$u"
}
write_conf() { # the name of seq's second step
    cat >"$CONF" <<EOF2
storage: { path = "$STATE"; };
confidence: { threshold = 0.0; };
server: { socket = "$RUN/ndf.sock"; };
patterns = (
    { name = "seq"; type = "sequential";
      params = { steps = ( $(step a), $(step ${1:-b}), $(step c) ); }; },
    { name = "seqfail"; type = "sequential";
      params = { steps = ( $(step f1), $(step f2 fails), $(step f3) ); }; },
    { name = "par"; type = "parallel";
      params = { max_concurrent = 2;
                 tasks = ( $(step t3 "" t2), $(step t1), $(step t2 "" t1) ); }; },
    { name = "ma"; type = "sequential"; params = { steps = ( $(step ma1), $(step ma2) ); }; },
    { name = "mb"; type = "sequential"; params = { steps = ( $(step mb1) ); }; },
    { name = "meta"; type = "meta";
      params = { phases = ( { name = "p1"; patterns = [ "ma" ]; },
                            { name = "p2"; patterns = [ "mb" ]; } ); }; },
    { name = "noundo"; type = "sequential";
      params = { steps = ( { name = "n"; step = "exec"; params = { shell = true; command = "true"; }; } ); }; },
    { name = "autorb"; type = "sequential";
      params = { steps = ( $(step x1), { name = "x2"; step = "exec"; params = { shell = true; command = "false"; }; } ); }; },
    { name = "viastep"; type = "sequential";
      params = { steps = ( { name = "inner"; step = "pattern"; params = { pattern = "mb"; }; } ); }; },
    { name = "rd"; type = "sequential";
      params = { rollback_enabled = false; steps = ( $(step r1),
                           { name = "r2"; step = "exec"; params = { shell = true; command = "test -e $OKF"; }; } ); }; },
    { name = "pf"; type = "parallel";
      params = { rollback_enabled = false;
                 tasks = ( $(step p1), $(step p2 "" p1),
                           { name = "p3"; step = "exec"; depends_on = [ "p1" ]; params = { shell = true; command = "false"; undo = "echo p3 >> $UNDO"; }; } ); }; },
    { name = "outer"; type = "meta";
      params = { phases = ( { name = "o1"; patterns = [ "ma" ]; },
                            { name = "o2"; patterns = [ "pf" ]; } ); }; },
    { name = "hang"; type = "sequential";
      params = { steps = ( { name = "h"; step = "exec"; timeout = 1.0;
                             params = { shell = true; command = "true"; undo = "sleep 300"; }; } ); }; },
    { name = "slowundo"; type = "sequential";
      params = { steps = ( $(step v1),
                           { name = "u"; step = "exec"; isolation = "process"; params = { shell = true; command = "true";
                             undo = "echo u >> $UNDO; echo \$\$\$\$ > $PIDF; while [ ! -e $GO ]; do sleep 0.05; done"; }; } ); }; },
    { name = "autoslow"; type = "sequential";
      params = { steps = ( { name = "u"; step = "exec"; isolation = "process"; params = { shell = true; command = "true";
                             undo = "echo \$\$\$\$ > $PIDF; while [ ! -e $GO ]; do sleep 0.05; done"; }; },
                           { name = "f"; step = "exec"; params = { shell = true; command = "false"; }; } ); }; },
    { name = "slow"; type = "sequential";
      params = { steps = ( { name = "s"; step = "exec"; params = { shell = true;
                             command = "sleep 3"; undo = "echo slow >> $UNDO"; }; } ); }; }
);
EOF2
}
write_conf
ndf() { "$NDF" -c "$CONF" "$@"; }
newest() { ndf runs "$1" --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p'; }
undone() { [ -e "$UNDO" ] && tr '\n' ' ' <"$UNDO" | sed 's/ $//'; }

# ---- sequential: newest first, ${execution_id} the original's ----
expect_exit 0 "seq runs" -- ndf run seq
id=$(newest seq)
rm -f "$UNDO"
expect_exit 3 "a target that is not a step is refused" -- ndf rollback "$id" --target nosuch
expect_match "$err" "no step 'nosuch'.*nothing was undone" "and says so"
expect_exit 0 "which left it as it was" -- ndf status "$id"
expect_match "$out" "SUCCEEDED" "SUCCEEDED"
[ ! -e "$UNDO" ] && ok "and undid nothing" || not_ok "and undid nothing: $(undone)"
expect_exit 0 "ndf rollback of a succeeded sequence" -- ndf rollback "$id"
expect_match "$(undone)" "^c b $id a\$" "seq: each undo once, newest first, with the original id"
expect_match "$out" "ROLLED_BACK +step a" "the rollback's record shows the undone steps"
expect_match "$out" "^execution $id: rolled back in" "and says rolled back, not ok"
case "$err" in *error*) not_ok "and prints no error line: $err" ;; *) ok "and prints no error line" ;; esac
expect_exit 0 "status after the rollback" -- ndf status "$id"
expect_match "$out" "ROLLED_BACK" "status says rolled back"
expect_match "$out" "^message: rolled back: 3 node" "and labels its message as no error"
expect_match "$out" "ROLLED_BACK +step c .*undone by a rollback" "the stored steps say they were undone"
expect_exit 0 "runs --status rolled_back" -- ndf runs seq --status ROLLED_BACK --json
expect_match "$out" "\"id\":\"$id\"" "runs lists it as ROLLED_BACK"
expect_exit 2 "a second one-shot rollback is refused" -- ndf rollback "$id"
expect_match "$err" "^ndf: rollback: execution $id is already rolled back" "and says why"
expect_match "$(undone)" "^c b $id a\$" "nothing was undone twice"
expect_exit 0 "learning keeps the counts of a rolled-back run" -- ndf show seq
expect_match "$out" '^executions: +1 \(1 succeeded' "the rolled-back run still counts as it ended"

# ---- parallel: reverse dependency order ----
expect_exit 0 "par runs" -- ndf run par
id=$(newest par)
rm -f "$UNDO"
expect_exit 0 "ndf rollback of a parallel pattern" -- ndf rollback "$id"
expect_match "$(undone)" "^t3 t2 t1\$" "par: dependents undone before their dependencies, once"
expect_exit 0 "par status" -- ndf status "$id"
expect_match "$out" "ROLLED_BACK" "par is rolled back"

# ---- meta: phases newest first, each sub-pattern's steps newest first ----
expect_exit 0 "meta runs" -- ndf run meta
id=$(newest meta)
rm -f "$UNDO"
expect_exit 2 "an unknown level is refused" -- ndf rollback "$id" --level sideways
expect_exit 0 "ndf rollback --level complete of a meta pattern" -- ndf rollback "$id" --level complete
expect_match "$(undone)" "^mb1 ma2 ma1\$" "meta: phase p2 then p1, each sequence newest first, once"
sub=$(newest ma)
expect_exit 2 "a sub-pattern's execution is refused" -- ndf rollback "$sub"
expect_match "$err" "ran as a sub-pattern of $id" "and the parent is named"

# ---- meta with a failed parallel sub-pattern: honest about what is left ----
expect_exit 1 "outer fails in its second phase" -- ndf run outer
id=$(newest outer)
rm -f "$UNDO"
expect_exit 2 "a level that undoes nothing is refused" -- ndf rollback "$id" --level phase
expect_match "$err" "nothing to undo at level phase" "and says so"
expect_exit 0 "and leaves it as it was" -- ndf status "$id"
expect_match "$out" "FAILED in" "FAILED"
[ ! -e "$UNDO" ] && ok "and undid nothing" || not_ok "and undid nothing: $(undone)"
expect_exit 0 "--level complete of it" -- ndf rollback "$id" --level complete
expect_match "$(undone)" "^ma2 ma1\$" "undoes the completed phase"
expect_exit 0 "status" -- ndf status "$id"
expect_match "$out" "FAILED in" "is not recorded ROLLED_BACK while completed work is left"
expect_match "$out" "partly rolled back at level complete: [0-9]+ node\(s\) undone, 2 completed" "and says it is partly rolled back"
: >"$UNDO"
expect_exit 0 "a rollback again at level pattern" -- ndf rollback "$id"
expect_match "$(undone)" "^(p2 )?p1\$" "undoes the failed sub-pattern's completed tasks, not ma again"
expect_exit 0 "status" -- ndf status "$id"
# p2 is reached by the replay only when it takes its turn before p3 fails
case "$(undone)" in
p2*) expect_match "$out" "ROLLED_BACK in" "ROLLED_BACK once nothing with an undo is left" ;;
*) expect_match "$out" "partly rolled back at level pattern: [0-9]+ node\(s\) undone, 1 completed" \
    "p2, not reached by the replay, is counted as left" ;;
esac

# ---- an undo that fails: FAILED, then a rollback again undoes the rest ----
expect_exit 0 "seqfail runs" -- ndf run seqfail
id=$(newest seqfail)
rm -f "$UNDO" "$OKF"
expect_exit 1 "a rollback whose undo fails exits 1" -- ndf rollback "$id"
expect_match "$err" "rollback failed at 'f2'" "and names the step"
expect_match "$(undone)" "^f3 f1\$" "the other undo actions ran"
expect_exit 0 "status after the failed rollback" -- ndf status "$id"
expect_match "$out" "FAILED in" "the execution is FAILED"
touch "$OKF"
: >"$UNDO"
expect_exit 0 "a rollback again succeeds" -- ndf rollback "$id"
expect_match "$(undone)" "^f2\$" "and undoes only what was left"

# ---- an undo is bounded by its step's timeout ----
expect_exit 0 "hang runs" -- ndf run hang
id=$(newest hang)
expect_exit 1 "an undo that outlives its step's timeout fails the rollback" -- ndf rollback "$id"
expect_match "$err" "undoing step 'h' failed \(timed out\)" "and says it timed out"
expect_exit 0 "status" -- ndf status "$id"
expect_match "$out" "undo failed" "the step says its undo failed"

# ---- refusals ----
expect_exit 0 "noundo runs" -- ndf run noundo
id=$(newest noundo)
expect_exit 2 "an execution with no undo action is refused" -- ndf rollback "$id"
expect_match "$err" "nothing to undo" "and says so"
expect_exit 0 "its status" -- ndf status "$id"
expect_match "$out" "SUCCEEDED" "and it is left SUCCEEDED"
expect_exit 1 "autorb fails and rolls itself back" -- ndf run autorb
id=$(newest autorb)
rm -f "$UNDO"
expect_exit 2 "a failed run already rolled back by itself is refused" -- ndf rollback "$id"
expect_match "$err" "nothing to undo" "and says so"
[ ! -e "$UNDO" ] && ok "no undo ran again" || not_ok "no undo ran again: $(undone)"
expect_exit 0 "viastep runs" -- ndf run viastep
id=$(newest viastep)
expect_exit 2 "a step that ran a sub-pattern is refused" -- ndf rollback "$id"
expect_match "$err" "step 'inner' ran a sub-pattern" "and says so"
expect_exit 3 "an unknown id is refused" -- ndf rollback 20200101T000000-1-1
expect_exit 2 "no id is a usage error" -- ndf rollback
expect_exit 2 "an empty id is a usage error" -- ndf rollback ""

ndf run slow >/dev/null 2>&1 &
SLOW=$!
for i in $(seq 1 100); do
    id=$(newest slow)
    [ -n "$id" ] && break
    sleep 0.05
done
expect_exit 2 "a running execution is refused" -- ndf rollback "$id"
expect_match "$err" "still running" "and says so"
wait $SLOW

# a definition changed since: its steps no longer match
expect_exit 0 "seq runs again" -- ndf run seq
id=$(newest seq)
write_conf bb
rm -f "$UNDO"
expect_exit 2 "a definition changed since is refused" -- ndf rollback "$id"
expect_match "$err" "changed since it ran" "and says so"
[ ! -e "$UNDO" ] && ok "nothing was undone" || not_ok "nothing was undone: $(undone)"
expect_exit 0 "its status" -- ndf status "$id"
expect_match "$out" "SUCCEEDED" "and it is left as it was"
write_conf

# ---- a redriven execution: only the redrive may be rolled back ----
rm -f "$OKF" "$UNDO"
expect_exit 1 "rd fails" -- ndf run rd
id=$(newest rd)
touch "$OKF"
expect_exit 0 "its redrive succeeds" -- ndf redrive "$id"
id2=$(newest rd)
[ "$id2" != "$id" ] && ok "the redrive is a new execution" || not_ok "the redrive is a new execution"
[ ! -e "$UNDO" ] && ok "r1 was reused, not undone" || not_ok "r1 was reused: $(undone)"
expect_exit 2 "the redriven execution is refused" -- ndf rollback "$id"
expect_match "$err" "execution $id was redriven as $id2: roll back that one" "and names the redrive"
expect_exit 0 "and left as it was" -- ndf status "$id"
expect_match "$out" "FAILED in" "FAILED"
expect_exit 0 "the redrive's rollback" -- ndf rollback "$id2"
expect_match "$(undone)" "^r1\$" "undoes its reused step once"
expect_exit 2 "the redriven execution is still refused after it" -- ndf rollback "$id"
expect_match "$(undone)" "^r1\$" "and r1 is not undone twice"
# its redrive's rollback undid r1, which the redrive had reused from it
expect_exit 2 "resuming the redriven execution after its redrive's rollback is refused" -- ndf redrive "$id"
expect_match "$err" "execution $id cannot be resumed: step 'r1' it completed was undone since by the rollback of $id2.*--from-start" \
    "and says which step and which rollback"
expect_exit 0 "--from-start runs it all again" -- ndf redrive "$id" --from-start
expect_match "$err" "0 node\(s\) reused" "reusing nothing"
rm -f "$OKF" "$UNDO"
expect_exit 1 "rd fails again" -- ndf run rd
id=$(newest rd)
touch "$OKF"
expect_exit 0 "its redrive succeeds" -- ndf redrive "$id"
id2=$(newest rd)
expect_exit 2 "the redriven execution first: refused" -- ndf rollback "$id"
expect_exit 0 "then the redrive's rollback" -- ndf rollback "$id2"
expect_match "$(undone)" "^r1\$" "r1 undone once in the other order too"
expect_exit 2 "a redrive of the rolled-back redrive is refused" -- ndf redrive "$id2"

# ---- two one-shots at once: one wins ----
expect_exit 0 "seq runs" -- ndf run seq
id=$(newest seq)
rm -f "$UNDO"
ndf rollback "$id" >"$SCRATCH/r1" 2>&1 &
P1=$!
ndf rollback "$id" >"$SCRATCH/r2" 2>&1
E2=$?
wait $P1
E1=$?
[ $((E1 + E2)) -eq 2 ] && { [ $E1 -eq 0 ] || [ $E2 -eq 0 ]; } &&
    ok "two one-shots at once: one succeeds, one is refused ($E1, $E2)" ||
    not_ok "two one-shots at once: exits $E1 and $E2: $(cat "$SCRATCH/r1" "$SCRATCH/r2")"
expect_match "$(undone)" "^c b $id a\$" "each undo ran once"

# ---- a rollback killed while an undo runs: recovered as interrupted ----
# gone PID: no such process, or a zombie (killed; its parent died, and
# who reaps it then is not ndf)
gone() {
    ! kill -0 "$1" 2>/dev/null || [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" = Z ]
}
undo_pid() { cat "$PIDF" 2>/dev/null; }
expect_exit 0 "slowundo runs" -- ndf run slowundo
id=$(newest slowundo)
rm -f "$UNDO" "$PIDF" "$GO"
# no cgroup (which would take the undo with ndf): only the store knows
# the undo's process group
NDF_CGROUP=off "$NDF" -c "$CONF" rollback "$id" >"$SCRATCH/r1" 2>&1 & # $! the program's pid
RB=$!
wait_for test -s "$PIDF" && ok "the slow undo started" || not_ok "the slow undo started: $(cat "$SCRATCH/r1")"
upid=$(undo_pid)
sleep 0.5 # the group's row is queued, not waited for
expect_exit 0 "ndf runs beside a live rollback" -- ndf runs slowundo
expect_exit 0 "ndf status beside a live rollback" -- ndf status "$id"
expect_match "$out" "being rolled back by ndf process $RB " "a live claimer's claim is not recovered"
expect_exit 2 "a second rollback meanwhile is refused" -- ndf rollback "$id"
expect_match "$err" "execution $id is being rolled back by ndf process $RB on .*: one rollback of it runs at a time" \
    "and says who holds it"
expect_exit 5 "ndf wait meanwhile waits for the rollback's end" -- ndf wait "$id" --timeout 0.3
expect_match "$err" "execution '$id' is still being rolled back by ndf process $RB on .* after 0.3s" \
    "and says it is being rolled back"
expect_exit 2 "a redrive meanwhile is refused" -- ndf redrive "$id"
expect_match "$err" "execution $id is being rolled back by ndf process $RB on [^:]*: it cannot be redriven while its undo actions run" \
    "and says it is being rolled back, not that it was"
expect_exit 2 "a redrive --from-start meanwhile is refused" -- ndf redrive "$id" --from-start
expect_match "$err" "is being rolled back" "the same way"
kill -KILL $RB
wait $RB
sleep 0.2
gone "$upid" && not_ok "the undo outlives the killed rollback until a recovery" ||
    ok "the undo outlives the killed rollback until a recovery"
expect_exit 0 "the next command's recovery" -- ndf status "$id"
expect_match "$err" "killed [1-9][0-9]* leftover undo process" "kills the undo's leftovers"
expect_match "$out" "FAILED in" "makes the execution FAILED"
expect_match "$out" "rollback interrupted: process $RB on .* died before recording its end .it had ended SUCCEEDED; its undo actions may have run in part.; 'ndf rollback $id' runs the undo actions again" \
    "and says the rollback was interrupted"
wait_for gone "$upid" && ok "the killed rollback's undo process is gone" ||
    not_ok "the killed rollback's undo process $upid is still there"
expect_exit 2 "a redrive without --from-start is refused" -- ndf redrive "$id"
expect_match "$err" "its rollback was interrupted" "and says why"
touch "$GO"
expect_exit 0 "ndf rollback again succeeds" -- ndf rollback "$id"
expect_match "$(undone)" "^u u v1\$" "the undo of u ran again, then v1's"
expect_exit 0 "status" -- ndf status "$id"
expect_match "$out" "ROLLED_BACK in" "ROLLED_BACK"

# ---- a run killed during its own rollback after a failure ----
rm -f "$PIDF" "$GO"
NDF_CGROUP=off "$NDF" -c "$CONF" run autoslow >/dev/null 2>&1 &
RB=$!
wait_for test -s "$PIDF" && ok "autoslow's undo started" || not_ok "autoslow's undo started"
upid=$(undo_pid)
sleep 0.5 # the group's row is queued, not waited for
kill -KILL $RB
wait $RB
gone "$upid" && not_ok "its undo outlives the killed run until a recovery" ||
    ok "its undo outlives the killed run until a recovery"
expect_exit 0 "the next command's recovery" -- ndf runs autoslow --limit 1
expect_match "$out" "CRASHED" "makes the run CRASHED"
wait_for gone "$upid" && ok "and kills the undo process of its rollback" ||
    not_ok "the undo process $upid of the killed run's rollback is still there"
touch "$GO"

# ---- the end of a rollback cannot be written (a full disk) ----
MNT=$SCRATCH/mnt
mkdir "$MNT"
if mount -t tmpfs -o size=2m,mode=0700 tmpfs "$MNT" 2>/dev/null; then
    trap 'umount "$MNT" 2>/dev/null; rm -rf "$SCRATCH"' EXIT
    sed "s|path = \"$STATE\"|path = \"$MNT/state\"|" "$CONF" >"$SCRATCH/full.conf"
    nf() { "$NDF" -c "$SCRATCH/full.conf" "$@"; }
    expect_exit 0 "tmpfs: slowundo runs" -- nf run slowundo
    id=$(nf runs slowundo --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')
    rm -f "$UNDO" "$PIDF" "$GO"
    "$NDF" -c "$SCRATCH/full.conf" rollback "$id" >"$SCRATCH/r1" 2>"$SCRATCH/r1.err" &
    RB=$!
    wait_for test -s "$PIDF"
    dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
    touch "$GO"
    wait $RB
    E1=$?
    rm -f "$MNT/fill"
    if [ $E1 -eq 0 ]; then
        # SQLite may reuse room its WAL file already has
        echo "# SKIP the end of the rollback fitted in the full disk"
    else
        [ $E1 -eq 8 ] && ok "a full disk at the rollback's end: exit 8" ||
            not_ok "a full disk at the rollback's end: exit $E1: $(cat "$SCRATCH/r1.err")"
        expect_match "$(cat "$SCRATCH/r1.err")" "the rollback ran, but its end could not be recorded" "and says so"
        expect_exit 0 "the next command's recovery" -- nf status "$id"
        expect_match "$out" "FAILED in" "makes it FAILED, not ROLLED_BACK for good"
        expect_match "$out" "rollback interrupted" "interrupted"
        : >"$UNDO"
        expect_exit 0 "ndf rollback again succeeds" -- nf rollback "$id"
        expect_match "$(undone)" "^u v1\$" "and runs the undo actions again"
    fi
    umount "$MNT"
    trap 'rm -rf "$SCRATCH"' EXIT
else
    echo "# SKIP a full disk: mount -t tmpfs is not permitted here"
fi

# ---- signals to ndf rollback: the first lets the undo actions finish ----
expect_exit 0 "slowundo runs" -- ndf run slowundo
id=$(newest slowundo)
rm -f "$UNDO" "$PIDF" "$GO"
"$NDF" -c "$CONF" rollback "$id" >"$SCRATCH/r1" 2>"$SCRATCH/r1.err" &
RB=$!
wait_for test -s "$PIDF"
kill -TERM $RB
wait_for grep -q "letting the undo actions finish" "$SCRATCH/r1.err" &&
    ok "one SIGTERM: says it lets the undo actions finish" ||
    not_ok "one SIGTERM: says it lets the undo actions finish: $(cat "$SCRATCH/r1.err")"
expect_match "$(cat "$SCRATCH/r1.err")" "^ndf: rollback: SIGTERM: letting the undo actions finish; send it again to stop them\$" \
    "in those words"
sleep 0.5 # the rollback takes at least this long: its duration says so
touch "$GO"
wait $RB
E1=$?
[ $E1 -eq 0 ] && ok "and exits 0 once the rollback completed" || not_ok "exit $E1 after one SIGTERM: $(cat "$SCRATCH/r1.err")"
took=$(sed -n 's/^execution .*: rolled back in \([0-9.]*\)s$/\1/p' "$SCRATCH/r1")
awk -v t="${took:-0}" 'BEGIN { exit !(t >= 0.5) }' && ok "it prints the rollback's own duration ($took s)" ||
    not_ok "the rollback's duration: '$took': $(head -1 "$SCRATCH/r1")"
expect_match "$(undone)" "^u v1\$" "the undo in progress and the remaining one ran"
expect_exit 0 "status" -- ndf status "$id"
expect_match "$out" "ROLLED_BACK in" "ROLLED_BACK"

# ---- a second signal stops them ----
expect_exit 0 "slowundo runs" -- ndf run slowundo
id=$(newest slowundo)
rm -f "$UNDO" "$PIDF" "$GO"
"$NDF" -c "$CONF" rollback "$id" >"$SCRATCH/r1" 2>"$SCRATCH/r1.err" &
RB=$!
wait_for test -s "$PIDF"
upid=$(undo_pid)
# SIGTERM: a background job of a non-interactive shell ignores SIGINT
kill -TERM $RB
wait_for grep -q "letting the undo actions finish" "$SCRATCH/r1.err"
kill -TERM $RB
wait $RB
E1=$?
[ $E1 -eq 143 ] && ok "two SIGTERMs: exit 143 (128 + SIGTERM)" || not_ok "two SIGTERMs: exit $E1: $(cat "$SCRATCH/r1.err")"
expect_match "$(cat "$SCRATCH/r1.err")" "SIGTERM again: stopping the undo actions" "says it stops them"
expect_match "$(cat "$SCRATCH/r1.err")" "rollback interrupted by signal at 'u'" "and where"
expect_match "$(cat "$SCRATCH/r1.err")" "rollback: stopped \(cancelled\) at step 'u'; 1 more undo action\(s\) not run" \
    "one line for the undo actions not run"
grep -q "undoing step 'v1'" "$SCRATCH/r1.err" && not_ok "no error for v1's undo, which never ran: $(cat "$SCRATCH/r1.err")" ||
    ok "no error for v1's undo, which never ran"
gone "$upid" && ok "the running undo was killed" || not_ok "the running undo $upid was not killed"
expect_match "$(undone)" "^u\$" "no undo ran after the second signal"
expect_exit 0 "status" -- ndf status "$id"
expect_match "$out" "FAILED in" "FAILED"
expect_match "$out" "rollback interrupted by signal at 'u'; 'ndf rollback $id' runs the undo actions again" "and says so"
touch "$GO"
: >"$UNDO"
expect_exit 0 "ndf rollback again" -- ndf rollback "$id"
expect_match "$(undone)" "^u v1\$" "undoes u again, then v1"

# ---- a server: ctl rollback, and ctl beside a one-shot ----
# the program itself, not the function: $! must be the server's pid; no
# cgroup, as above
NDF_CGROUP=off "$NDF" -c "$CONF" serve --no-watch 2>"$SCRATCH/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$SCRATCH"' EXIT
for i in $(seq 1 200); do
    ndf ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
ctlid() { ndf ctl run "$1" --json | sed -n 's/^{"id":"\([^"]*\)".*/\1/p'; }
id=$(ctlid seq)
rm -f "$UNDO"
expect_exit 0 "ctl rollback" -- ndf ctl rollback "$id"
expect_match "$(undone)" "^c b $id a\$" "ctl: each undo once, newest first"
expect_exit 0 "status after ctl rollback" -- ndf status "$id"
expect_match "$out" "ROLLED_BACK in" "the store says rolled back"
expect_exit 2 "a second ctl rollback is refused" -- ndf ctl rollback "$id"
expect_match "$err" "already rolled back" "and says why"
expect_exit 2 "a one-shot after ctl is refused" -- ndf rollback "$id"
id=$(ctlid seq)
rm -f "$UNDO"
ndf ctl rollback "$id" >"$SCRATCH/r1" 2>&1 &
P1=$!
ndf rollback "$id" >"$SCRATCH/r2" 2>&1
E2=$?
wait $P1
E1=$?
[ $((E1 + E2)) -eq 2 ] && { [ $E1 -eq 0 ] || [ $E2 -eq 0 ]; } &&
    ok "ctl and one-shot at once: one succeeds, one is refused ($E1, $E2)" ||
    not_ok "ctl and one-shot at once: exits $E1 and $E2: $(cat "$SCRATCH/r1" "$SCRATCH/r2")"
expect_match "$(undone)" "^c b $id a\$" "each undo ran once"
id=$(ctlid noundo)
expect_exit 2 "ctl: an execution with no undo action is refused" -- ndf ctl rollback "$id"
expect_match "$err" "nothing to undo" "and says so"
expect_exit 0 "its status" -- ndf status "$id"
expect_match "$out" "SUCCEEDED" "and it is left SUCCEEDED"
id=$(ctlid seq)
expect_exit 0 "one-shot rollback of an execution the server holds" -- ndf rollback "$id"
expect_exit 2 "then ctl rollback is refused" -- ndf ctl rollback "$id"
expect_match "$err" "already rolled back" "and says why"

# ctl rollback prints the rollback's duration, not its run's
id=$(ctlid slowundo)
rm -f "$GO" "$PIDF"
ndf ctl rollback "$id" >"$SCRATCH/r1" 2>&1 &
CTL=$!
wait_for test -s "$PIDF"
sleep 0.5 # the undo, and so the rollback, takes at least this long
touch "$GO"
wait $CTL
E1=$?
[ $E1 -eq 0 ] && ok "ctl rollback of a slow undo" || not_ok "ctl rollback of a slow undo: exit $E1: $(cat "$SCRATCH/r1")"
took=$(sed -n 's/^execution .*: rolled back in \([0-9.]*\)s$/\1/p' "$SCRATCH/r1")
awk -v t="${took:-0}" 'BEGIN { exit !(t >= 0.5) }' && ok "ctl prints the rollback's own duration ($took s)" ||
    not_ok "ctl: the rollback's duration: '$took': $(head -1 "$SCRATCH/r1")"

# ---- a server SIGKILLed during ctl rollback ----
id=$(ctlid slowundo)
rm -f "$UNDO" "$PIDF" "$GO"
ndf ctl rollback "$id" >"$SCRATCH/r1" 2>&1 &
CTL=$!
wait_for test -s "$PIDF" && ok "ctl: the slow undo started" || not_ok "ctl: the slow undo started: $(cat "$SCRATCH/r1")"
upid=$(undo_pid)
sleep 0.5
expect_exit 0 "ndf status beside the server's live rollback" -- ndf status "$id"
expect_match "$out" "being rolled back by ndf process $SERVER " "the server's claim is not recovered"
kill -KILL $SERVER
wait $SERVER
wait $CTL
gone "$upid" && not_ok "the undo outlives the killed server until a recovery" ||
    ok "the undo outlives the killed server until a recovery"
expect_exit 0 "the next command's recovery" -- ndf status "$id"
expect_match "$out" "rollback interrupted: process $SERVER on .* died before recording its end" \
    "the dead server's rollback is interrupted"
wait_for gone "$upid" && ok "its undo process is gone" || not_ok "its undo process $upid is still there"
touch "$GO"
: >"$UNDO"
expect_exit 0 "a one-shot rollback then succeeds" -- ndf rollback "$id"
expect_match "$(undone)" "^u v1\$" "and runs the undo actions"

# ---- a server stopped (SIGTERM) during ctl rollback ----
# after its grace it stops the undo actions as a one-shot's second signal
# does, records it, answers the client, and only then exits
NDF_CGROUP=off "$NDF" -c "$CONF" serve --no-watch --grace 1 2>"$SCRATCH/serve2.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$SCRATCH"' EXIT
for i in $(seq 1 200); do
    ndf ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
id=$(ctlid slowundo)
rm -f "$UNDO" "$PIDF" "$GO"
ndf ctl rollback "$id" >"$SCRATCH/r1" 2>&1 &
CTL=$!
wait_for test -s "$PIDF" && ok "shutdown: the slow undo started" ||
    not_ok "shutdown: the slow undo started: $(cat "$SCRATCH/r1")"
upid=$(undo_pid)
kill -TERM $SERVER
wait $SERVER
E1=$?
[ $E1 -eq 0 ] && ok "the server stopped by SIGTERM exits 0" || not_ok "the server exits $E1"
gone "$upid" && ok "its undo process was stopped before it exited" ||
    not_ok "its undo process $upid outlives the server"
expect_match "$(cat "$SCRATCH/serve2.log")" "1 rollback still running after 1.0s: stopping its undo actions"     "the server says it stops the rollback"
wait $CTL
E2=$?
[ $E2 -ne 0 ] && [ $E2 -ne 9 ] && ok "ctl rollback is answered: exit $E2" ||
    not_ok "ctl rollback: exit $E2: $(cat "$SCRATCH/r1")"
expect_match "$(cat "$SCRATCH/r1")" "rollback interrupted by the server's shutdown at 'u'" "and told why"
expect_exit 0 "status after the shutdown" -- ndf status "$id"
expect_match "$out" "FAILED in" "the execution is FAILED"
expect_match "$out" "rollback interrupted by the server's shutdown at 'u'; 'ndf rollback $id' runs the undo actions again" \
    "and says the rollback was interrupted"
case "$err" in
*leftover*) not_ok "nothing was left to recover: $err" ;;
*) ok "nothing was left to recover" ;;
esac
expect_match "$(undone)" "^u\$" "no undo ran after the stop"
touch "$GO"
: >"$UNDO"
expect_exit 0 "a one-shot rollback then succeeds" -- ndf rollback "$id"
expect_match "$(undone)" "^u v1\$" "and runs the undo actions again"

finish
