#!/bin/sh
# Progress in the store while an execution runs: `ndf logs --follow`
# prints a step's output before the execution ends, `ndf status ID` shows
# the running step, a SIGKILLed run becomes CRASHED on the next open naming
# the step that was running, and its redrive reruns only that step on; and
# progress of a run that `ndf serve` runs.
. "$top_srcdir/tests/shell/lib.sh"

STATE=$SCRATCH/state
GO=$SCRATCH/go
LOG=$SCRATCH/log
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<EOF
storage: { path = "$STATE"; };
confidence: { threshold = 0.0; };
patterns = (
    { name = "live"; type = "sequential";
      params = { rollback_enabled = false; steps = (
        { name = "a"; step = "exec"; params = { shell = true; command = "echo a >> $LOG"; }; },
        { name = "b"; step = "exec"; params = { shell = true;
          command = "echo b >> $LOG; echo first; while [ ! -e $GO ]; do sleep 0.05; done; echo second"; }; },
        { name = "c"; step = "exec"; params = { shell = true; command = "echo c >> $LOG"; }; } ); }; }
);
EOF
ndf() { "$NDF" -c "$CONF" "$@"; }
running_id() { ndf runs live --status RUNNING --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p'; }
has_id() { [ -n "$(running_id)" ]; }

# ---- logs --follow streams a running execution ----
rm -f "$GO" "$LOG"
"$NDF" -c "$CONF" run live 2>"$SCRATCH/run.err" &
RUNNER=$!
if wait_for has_id; then ok "the running execution is in the store"; else not_ok "no RUNNING row"; fi
id=$(running_id)
"$NDF" -c "$CONF" logs --follow "$id" b >"$SCRATCH/follow.out" 2>&1 &
FOLLOW=$!
if wait_for grep -q first "$SCRATCH/follow.out"; then
    ok "logs --follow printed the step's first line while it runs"
else
    not_ok "logs --follow printed nothing while the step runs"
fi
kill -0 "$FOLLOW" 2>/dev/null && ok "logs --follow is still following" || not_ok "logs --follow ended early"
expect_exit 0 "status of the running execution" -- ndf status "$id"
expect_match "$out" "RUNNING +step b" "status shows step b RUNNING"
expect_match "$out" "COMPLETED +step a" "and step a COMPLETED"
touch "$GO"
wait "$RUNNER"
expect_match "$?" '^0$' "the run succeeded"
wait "$FOLLOW"
expect_match "$?" '^0$' "logs --follow ended with the execution"
expect_match "$(tr '\n' ' ' <"$SCRATCH/follow.out")" '^first second $' "and printed all of the step's output once"

# ---- a SIGKILL leaves the running step recorded ----
rm -f "$GO" "$LOG"
# exec: $! must be ndf itself, not a subshell running the function
"$NDF" -c "$CONF" run live 2>/dev/null &
RUNNER=$!
wait_for has_id
id=$(running_id)
# b is running once its first line is stored
wait_for sh -c "'$NDF' -c '$CONF' logs '$id' b | grep -q first"
kill -9 "$RUNNER"
wait "$RUNNER" 2>/dev/null
expect_exit 0 "status after the crash" -- ndf status "$id"
expect_match "$out" "CRASHED" "the next open marks it CRASHED"
expect_match "$out" "died while 'b' was running" "naming the step that was running"
expect_match "$err" "execution $id crashed: .*died while 'b'" "the warning names the execution by its id, not its row number"
expect_exit 0 "runs --status CRASHED" -- ndf runs live --status CRASHED --json
expect_match "$out" "\"id\":\"$id\"" "runs lists it as CRASHED"

# ---- and its redrive resumes at that step ----
: >"$LOG"
touch "$GO"
expect_exit 0 "the crashed execution is redriven" -- ndf redrive "$id"
expect_match "$(tr '\n' ' ' <"$LOG")" '^b c $' "the redrive reran b and c, not a"

# ---- logs --follow and wait of a SIGKILLed run end, with its state ----
rm -f "$GO" "$LOG"
"$NDF" -c "$CONF" run live 2>/dev/null &
RUNNER=$!
wait_for has_id
id=$(running_id)
wait_for sh -c "'$NDF' -c '$CONF' logs '$id' b | grep -q first"
# (timeout: a follower that never notices would hang the suite)
timeout 60 "$NDF" -c "$CONF" logs --follow "$id" b >"$SCRATCH/kf.out" 2>"$SCRATCH/kf.err" &
KFOLLOW=$!
timeout 60 "$NDF" -c "$CONF" wait "$id" >"$SCRATCH/kw.out" 2>"$SCRATCH/kw.err" &
KWAIT=$!
wait_for grep -q first "$SCRATCH/kf.out"
kill -9 "$RUNNER"
wait "$RUNNER" 2>/dev/null
wait "$KFOLLOW"
expect_match "$?" '^1$' "logs --follow of a SIGKILLed run ends, exit 1 (failed), as its run's end"
expect_match "$(cat "$SCRATCH/kf.out")" '^first$' "it printed the output the run left"
expect_match "$(cat "$SCRATCH/kf.err")" "^ndf: logs: execution $id of 'live' ended CRASHED: .*died while 'b' was running" \
    "and says on stderr how it ended"
wait "$KWAIT"
expect_match "$?" '^1$' "wait of a SIGKILLed run ends too, exit 1"
expect_match "$(cat "$SCRATCH/kw.out")" "execution $id of 'live': CRASHED" "saying CRASHED"
touch "$GO"

# ---- output dropped while following is never a silent gap ----
G1=$SCRATCH/go1 G2=$SCRATCH/go2 BCONF=$SCRATCH/burst.conf
cat >"$BCONF" <<EOF
storage: { path = "$STATE"; };
patterns = (
    { name = "burst"; type = "sequential"; params = { steps = (
        { name = "gen"; step = "exec"; params = { shell = true;
          command = "echo start; while [ ! -e $G1 ]; do sleep 0.05; done; seq 1 200000; while [ ! -e $G2 ]; do sleep 0.05; done; echo end"; }; } ); }; }
);
EOF
"$NDF" -c "$BCONF" run burst >/dev/null 2>&1 &
RUNNER=$!
wait_for sh -c "'$NDF' -c '$BCONF' runs burst --status RUNNING --json | grep -q id"
id=$("$NDF" -c "$BCONF" runs burst --status RUNNING --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')
wait_for sh -c "'$NDF' -c '$BCONF' logs '$id' gen | grep -q start"
"$NDF" -c "$BCONF" logs "$id" gen --follow >"$SCRATCH/f1.out" 2>"$SCRATCH/f1.err" &
F1=$!
"$NDF" -c "$BCONF" logs "$id" --follow >"$SCRATCH/f2.out" 2>"$SCRATCH/f2.err" &
F2=$!
wait_for grep -q start "$SCRATCH/f1.out"
wait_for grep -q start "$SCRATCH/f2.out"
touch "$G1"
wait_for sh -c "'$NDF' -c '$BCONF' logs '$id' gen | grep -qx 200000"
sleep 1 # both followers poll at least once more before the end
touch "$G2"
wait "$RUNNER"
wait "$F1"
expect_match "$?" '^0$' "burst: logs STEP --follow ended with the execution"
wait "$F2"
expect_match "$(cat "$SCRATCH/f1.err")" "gen \(stdout\): [0-9]+ bytes dropped before they could be followed" \
    "burst: a STEP's follower says on stderr that output went by unseen"
# (at least once: a loaded machine may leave more than one gap)
expect_match "$(grep -c '^==> gen (stdout)' "$SCRATCH/f2.out")" '^([2-9]|[1-9][0-9]+)$' \
    "burst: the headed follower repeats the header at the gap"
expect_match "$(grep '==>' "$SCRATCH/f2.out" | tail -1)" \
    '^==> gen \(stdout\) \[older output dropped\] <==$' "burst: and marks it dropped"
expect_match "$(tail -1 "$SCRATCH/f1.out")" '^end$' "burst: the follower printed the end"

# ---- the same for a run served by ndf serve ----
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
"$NDF" -c "$CONF" serve 2>"$SCRATCH/serve.log" &
SERVER=$!
for i in $(seq 1 200); do ndf ctl ping >/dev/null 2>&1 && break; sleep 0.02; done
rm -f "$GO"
expect_exit 0 "ctl run --async" -- ndf ctl run live --async
id=$(printf '%s\n' "$out" | grep -o '[0-9]\{8\}T[0-9]\{6\}-[0-9a-f]*-[0-9]*' | head -1)
[ -n "$id" ] && ok "ctl run --async printed the id" || not_ok "no execution id in: $out"
if wait_for sh -c "'$NDF' -c '$CONF' logs '$id' b | grep -q first"; then
    ok "served: the running step's output is in the store before the end"
else
    not_ok "served: no progress stored for $id"
fi
expect_exit 0 "served: status from the store" -- ndf status "$id"
expect_match "$out" "RUNNING +step b" "served: status shows step b RUNNING"
touch "$GO"
kill "$SERVER"
wait "$SERVER"

finish
