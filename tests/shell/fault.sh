#!/bin/sh
# Fault containment, as far as the issue's table is built: signals to
# `ndf run` cancel the execution (rollback, CANCELLED in the store, no step
# process left, exit 128+signal) for each pattern type; a second SIGINT
# skips rollback and still kills the processes.
. "$top_srcdir/tests/shell/lib.sh"
CONF=$SCRATCH/ndf.conf
S=$SCRATCH
FIX=${NDF_FIXTURE_DIR:?run through make check}
mkdir "$S/plugins"
cp "$FIX/misbehave.so" "$S/plugins/"
export NDF_PLUGIN_PATH="$NDF_PLUGIN_PATH:$S/plugins"
# A step process that writes its pid and the pid of a child it starts,
# then waits; `ign` ignores SIGTERM, so only SIGKILL ends it.
tree() { # NAME [ign]
    trap_=""
    [ "${2:-}" = ign ] && trap_="trap '' TERM; "
    printf '{ name = "%s"; step = "exec"; params = { argv = [ "sh", "-c", "%ssleep 307 & echo $$$$ $! > %s/%s.pids; wait" ]; }; }' \
        "$1" "$trap_" "$S" "$1"
}
undo_step() { # NAME: completes at once; its undo leaves a mark
    printf '{ name = "%s"; step = "exec"; params = { argv = [ "true" ]; undo = [ "touch", "%s/%s.undone" ]; }; }' \
        "$1" "$S" "$1"
}
cat >"$CONF" <<CONF
executor: { threads = 2; default_timeout = 60.0; kill_grace = 1.5; };
storage: { path = "$S/state"; };
# In process on purpose: this is what containment does for steps that are
# trusted (isolation.sh runs the same steps isolated).
plugins: { trust = [ "misbehave" ]; };
patterns = (
  { name = "seq"; type = "sequential";
    params = { steps = ( $(undo_step seq_first), $(tree seq_tree) ); }; },
  { name = "seq_ign"; type = "sequential";
    params = { steps = ( $(undo_step ign_first), $(tree ign_tree ign) ); }; },
  { name = "par"; type = "parallel";
    params = { tasks = ( $(undo_step par_first),
                         { name = "par_a"; step = "exec"; depends_on = [ "par_first" ];
                           params = { argv = [ "sh", "-c", "sleep 308 & echo \$\$\$\$ \$! > $S/par_a.pids; wait" ]; }; },
                         { name = "par_b"; step = "exec"; depends_on = [ "par_first" ];
                           params = { argv = [ "sh", "-c", "sleep 309 & echo \$\$\$\$ \$! > $S/par_b.pids; wait" ]; }; } ); }; },
  { name = "meta_inner"; type = "sequential";
    params = { steps = ( $(tree meta_tree) ); }; },
  { name = "escape"; type = "sequential";
    params = { steps = ( { name = "daemon"; step = "exec";
                           params = { argv = [ "sh", "-c", "setsid sleep 311 & echo \$! > $S/escape.pids; sleep 0.2" ]; }; },
                         { name = "deep"; step = "exec";
                           params = { argv = [ "sh", "-c", "setsid sh -c 'trap \"\" TERM; sleep 312 & echo \$\$\$\$ \$! > $S/deep.pids; wait' & sleep 0.2" ]; }; } ); }; },
  { name = "envi"; type = "sequential";
    params = { steps = ( { name = "d"; step = "exec";
                           params = { argv = [ "sh", "-c", "sleep 0.1; setsid env -i sleep 313 & echo \$! > $S/envi.pids; sleep 0.2" ]; }; } ); }; },
  { name = "orphan_exits"; type = "sequential";
    params = { steps = ( { name = "o"; step = "exec";
                           params = { argv = [ "sh", "-c", "setsid sh -c 'exit 0' & sleep 0.2" ]; }; } ); }; },
  { name = "burnout"; type = "sequential";
    params = { steps = ( { name = "b"; step = "exec";
                           params = { argv = [ "sh", "-c", "setsid sh -c 'i=0; while [ \$\$i -lt 200000 ]; do i=\$\$((i + 1)); done; echo \$\$\$\$ > $S/burnt.pids; exec sleep 314' & while [ ! -s $S/burnt.pids ]; do sleep 0.2; done" ]; }; } ); }; },
  { name = "spin"; type = "sequential";
    params = { steps = ( { name = "s"; step = "mb_spin"; } ); }; },
  { name = "crashy"; type = "sequential";
    params = { steps = ( { name = "pause"; step = "exec"; params = { argv = [ "sleep", "0.3" ]; }; },
                         { name = "boom"; step = "mb_null"; } ); }; },
  { name = "aborts"; type = "sequential";
    params = { steps = ( { name = "pause"; step = "exec"; params = { argv = [ "sleep", "0.3" ]; }; },
                         { name = "ab"; step = "mb_abort"; } ); }; },
  { name = "overflow"; type = "sequential";
    params = { steps = ( { name = "pause"; step = "exec"; params = { argv = [ "sleep", "0.3" ]; }; },
                         { name = "deep"; step = "mb_overflow"; } ); }; },
  { name = "nop"; type = "sequential";
    params = { steps = ( { name = "n"; step = "noop"; } ); }; },
  { name = "meta"; type = "meta";
    params = { phases = ( { name = "one"; patterns = [ "meta_inner" ]; } ); }; }
);
CONF
R="$NDF -c $CONF"

# wait_file FILE: up to 10 s for FILE to have content.
wait_file() {
    i=0
    while [ ! -s "$1" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    [ -s "$1" ]
}

# alive PID: the process exists and is not a zombie.
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/^.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# interrupt PATTERN SIG PIDFILE...: runs PATTERN, sends SIG once every
# PIDFILE has content, waits for ndf; $rc its status, $err its stderr.
interrupt() {
    pat=$1 sig=$2
    shift 2
    env --default-signal=INT,HUP,TERM $R run "$pat" >"$S/out" 2>"$S/err" &
    npid=$!
    for f in "$@"; do
        wait_file "$f" || not_ok "$pat: $f was never written"
    done
    kill -s "$sig" $npid
    wait $npid
    rc=$?
    err=$(cat "$S/err")
}

# no_survivors DESC PIDFILE...: none of the pids written is alive.
no_survivors() {
    desc=$1
    shift
    left=""
    for f in "$@"; do
        for p in $(cat "$f"); do
            alive "$p" && left="$left $p"
        done
    done
    if [ -z "$left" ]; then ok "$desc"; else not_ok "$desc (alive:$left)"; kill -9 $left 2>/dev/null; fi
}

# last_status PATTERN: the status `ndf runs` has for its newest execution.
last_status() {
    $R runs "$1" --limit 1 2>/dev/null | awk 'NR > 1 && $2 == "'"$1"'" { print $3; exit }'
}

for sig in INT TERM; do
    code=$((128 + $(kill -l $sig 2>/dev/null || echo 0)))
    [ $sig = INT ] && code=130
    [ $sig = TERM ] && code=143
    rm -f "$S"/*.pids "$S"/*.undone

    interrupt seq $sig "$S/seq_tree.pids"
    [ "$rc" -eq $code ] && ok "sequential: SIG$sig exits $code" || not_ok "sequential: SIG$sig exits $code (got $rc)"
    expect_match "$err" "SIG$sig: cancelling" "sequential: SIG$sig is announced"
    expect_match "$err" "^pattern seq: cancelled in" "sequential: the summary says cancelled"
    no_survivors "sequential: SIG$sig leaves no step process (leader and its child)" "$S/seq_tree.pids"
    [ -e "$S/seq_first.undone" ] && ok "sequential: rollback ran" || not_ok "sequential: rollback ran"
    expect_match "$(last_status seq)" '^CANCELLED$' "sequential: recorded CANCELLED"

    interrupt par $sig "$S/par_a.pids" "$S/par_b.pids"
    [ "$rc" -eq $code ] && ok "parallel: SIG$sig exits $code" || not_ok "parallel: SIG$sig exits $code (got $rc)"
    no_survivors "parallel: SIG$sig leaves no task process" "$S/par_a.pids" "$S/par_b.pids"
    [ -e "$S/par_first.undone" ] && ok "parallel: rollback ran" || not_ok "parallel: rollback ran"
    expect_match "$(last_status par)" '^CANCELLED$' "parallel: recorded CANCELLED"

    interrupt meta $sig "$S/meta_tree.pids"
    [ "$rc" -eq $code ] && ok "meta: SIG$sig exits $code" || not_ok "meta: SIG$sig exits $code (got $rc)"
    no_survivors "meta: SIG$sig leaves no process of a sub-pattern's step" "$S/meta_tree.pids"
    expect_match "$(last_status meta)" '^CANCELLED$' "meta: recorded CANCELLED"
done

# ndf batch: every execution it started is cancelled.
rm -f "$S"/*.pids "$S"/*.undone
printf '{"pattern":"seq"}\n{"pattern":"meta"}\n' >"$S/batch.in"
$R batch "$S/batch.in" >"$S/out" 2>"$S/err" &
npid=$!
wait_file "$S/seq_tree.pids" && wait_file "$S/meta_tree.pids"
kill -TERM $npid
wait $npid
rc=$?
out=$(cat "$S/out")
[ "$rc" -eq 143 ] && ok "batch: SIGTERM exits 143" || not_ok "batch: SIGTERM exits 143 (got $rc)"
expect_match "$out" '^\{"line":1,"pattern":"seq","success":false,"status":"cancelled"' "batch: line 1 cancelled"
expect_match "$out" '^\{"line":2,"pattern":"meta","success":false,"status":"cancelled"' "batch: line 2 cancelled"
no_survivors "batch: no process left" "$S/seq_tree.pids" "$S/meta_tree.pids"

# ndf delegate: the chosen pattern is cancelled and no fallback starts.
# (A configuration of its own: patterns without domains are candidates for
# any context, the crashing fixtures included.)
cat >"$S/deleg.conf" <<DCONF
executor: { threads = 2; default_timeout = 60.0; kill_grace = 1.5; };
storage: { path = "$S/state"; };
patterns = (
  { name = "deleg"; type = "sequential"; domains = [ "sigdeleg" ];
    params = { steps = ( $(undo_step deleg_first), $(tree deleg_tree) ); }; },
  { name = "deleg_other"; type = "sequential"; domains = [ "sigdeleg" ];
    params = { steps = ( $(undo_step other_first), $(tree other_tree) ); }; }
);
DCONF
rm -f "$S"/*.pids "$S"/*.undone
$NDF -c "$S/deleg.conf" delegate --domain sigdeleg >"$S/out" 2>"$S/err" &
npid=$!
i=0
while [ ! -s "$S/deleg_tree.pids" ] && [ ! -s "$S/other_tree.pids" ] && [ $i -lt 200 ]; do
    sleep 0.05; i=$((i + 1))
done
kill -TERM $npid
wait $npid
rc=$?
[ "$rc" -eq 143 ] && ok "delegate: SIGTERM exits 143" || not_ok "delegate: SIGTERM exits 143 (got $rc)"
no_survivors "delegate: no process left" $(ls "$S"/deleg_tree.pids "$S"/other_tree.pids 2>/dev/null)
[ -e "$S/deleg_first.undone" ] || [ -e "$S/other_first.undone" ] && ok "delegate: rollback ran" \
    || not_ok "delegate: rollback ran"
[ ! -e "$S/deleg_tree.pids" ] || [ ! -e "$S/other_tree.pids" ] && ok "delegate: no fallback started after the signal" \
    || not_ok "delegate: no fallback started after the signal"

# SIGHUP too; a second SIGINT while the step ignores SIGTERM kills it at
# once and skips rollback.
rm -f "$S"/*.pids "$S"/*.undone
interrupt seq HUP "$S/seq_tree.pids"
[ "$rc" -eq 129 ] && ok "SIGHUP exits 129" || not_ok "SIGHUP exits 129 (got $rc)"
expect_match "$(last_status seq)" '^CANCELLED$' "SIGHUP: recorded CANCELLED"

rm -f "$S"/*.pids "$S"/*.undone
env --default-signal=INT,HUP,TERM $R run seq_ign >"$S/out" 2>"$S/err" &
npid=$!
wait_file "$S/ign_tree.pids"
kill -INT $npid
sleep 0.3
alive $(cut -d' ' -f1 "$S/ign_tree.pids") && ok "a step ignoring SIGTERM outlives the first SIGINT (grace)" \
    || not_ok "a step ignoring SIGTERM outlives the first SIGINT (grace)"
t0=$(date +%s%N)
kill -INT $npid
wait $npid
rc=$?
t1=$(date +%s%N)
err=$(cat "$S/err")
[ "$rc" -eq 130 ] && ok "second SIGINT: exits 130" || not_ok "second SIGINT: exits 130 (got $rc)"
expect_match "$err" "SIGINT again: skipping rollback" "second SIGINT is announced"
no_survivors "second SIGINT: the step ignoring SIGTERM is killed" "$S/ign_tree.pids"
[ ! -e "$S/ign_first.undone" ] && ok "second SIGINT: rollback skipped" || not_ok "second SIGINT: rollback skipped"
expect_match "$(last_status seq_ign)" '^CANCELLED$' "second SIGINT: recorded CANCELLED"
# The kill did not wait for the 1.5 s grace (a generous bound, not a
# timing figure: the grace alone would take longer).
[ $(((t1 - t0) / 1000000)) -lt 1400 ] && ok "second SIGINT: no grace period" \
    || not_ok "second SIGINT: no grace period ($(((t1 - t0) / 1000000)) ms)"

# One SIGTERM to ndf, a step ignoring SIGTERM: SIGKILL at the end of the
# grace period, reported as killed (not as an abandoned step), and the
# rollback runs.
rm -f "$S"/*.pids "$S"/*.undone
interrupt seq_ign TERM "$S/ign_tree.pids"
[ "$rc" -eq 143 ] && ok "SIGTERM, step ignoring it: exits 143" || not_ok "SIGTERM, step ignoring it: exits 143 (got $rc)"
expect_match "$err" "step ign_tree: CANCELLED .*killed by signal 9 \(cancelled\)" \
    "SIGTERM, step ignoring it: killed after the grace period, not abandoned"
no_survivors "SIGTERM, step ignoring it: no process left" "$S/ign_tree.pids"
[ -e "$S/ign_first.undone" ] && ok "SIGTERM, step ignoring it: rollback ran" || not_ok "SIGTERM, step ignoring it: rollback ran"

# Processes that leave the step's process group (setsid) are reparented to
# ndf (a child subreaper), found by their NDF_STEP variable, stopped with
# the step (SIGKILL after the grace when they ignore SIGTERM) and reaped.
# Both paths: NDF_STEP and the subreaper alone (NDF_CGROUP=off), then with
# a cgroup per step where this machine delegates a writable cgroup2 tree.
for cg in off on; do
    rm -f "$S"/*.pids
    expect_exit 0 "cgroup $cg: a step whose daemon escaped with setsid completes" -- \
        env NDF_CGROUP=$cg $R run escape
    no_survivors "cgroup $cg: the escaped daemon was stopped with its step" "$S/escape.pids" "$S/deep.pids"
    expect_exit 0 "cgroup $cg: logs of the step" -- \
        $R logs "$(sed -n 's/.*(execution \([^)]*\)).*/\1/p' "$S/err" | tail -1)" daemon --stream log
    expect_match "$out" "left 1 process\(es\) outside its process group" "cgroup $cg: the step's log says so"
done
# What an escaped daemon used is counted with its step when the step stops
# and reaps it: the daemon burns about 0.3 s of CPU (200,000 rounds of
# shell arithmetic), the step itself only sleeps.
rm -f "$S"/*.pids
expect_exit 0 "a daemon that burns CPU and lingers" -- env NDF_CGROUP=off $R run burnout
no_survivors "the burning daemon was stopped with its step" "$S/burnt.pids"
bid=$($R runs burnout 2>/dev/null | awk 'NR==2{print $1}')
bcpu=$($R status "$bid" 2>/dev/null | awk '/measured: / { sub(/.*measured: /, ""); k = split($0, a, ", ")
    for (i = 1; i <= k; i++) { split(a[i], b, " "); if (b[1] ~ /^ndf\.proc_(user|sys)_s$/) s += b[2] } print s + 0; exit }')
awk -v x="$bcpu" 'BEGIN { exit !(x >= 0.15) }' && ok "the escaped daemon's CPU is the step's ($bcpu s)" ||
    not_ok "the escaped daemon's CPU is not counted: $bcpu s: $($R status "$bid" 2>&1)"

# A process that escaped and cleared its environment: only a cgroup finds it
# (it forks after the instant between the spawn and the move into the
# cgroup, which only the process group and NDF_STEP cover).
rm -f "$S"/*.pids
expect_exit 0 "a daemon that cleared its environment" -- $R -vv run envi
if printf '%s\n' "$err" | grep -q 'exec steps run in cgroups under'; then
    echo "# cgroup path exercised: $(printf '%s\n' "$err" | sed -n 's/.*exec steps run in cgroups under //p')"
    no_survivors "the cgroup stopped the daemon that cleared its environment" "$S/envi.pids"
    expect_match "$err" "its cgroup still held 1 process" "the step says the cgroup held it"
else
    echo "# no delegated writable cgroup2 tree here: the cgroup path is not exercised"
    ok "# SKIP the cgroup path (no delegated cgroup2 tree)"
    kill $(cat "$S/envi.pids") 2>/dev/null
fi

# Under the server: escaped daemons are stopped, and orphans that exit on
# their own are reaped, not left as zombies under it.
mkdir -m 700 "$S/run"
NDF_RUNTIME_DIR=$S/run $R serve 2>"$S/serve.log" &
SERVER=$!
for i in $(seq 1 100); do
    NDF_RUNTIME_DIR=$S/run $R ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
rm -f "$S"/*.pids
fails=0
for i in 1 2 3; do
    NDF_RUNTIME_DIR=$S/run $R ctl run escape >/dev/null 2>&1 || fails=$((fails + 1))
    NDF_RUNTIME_DIR=$S/run $R ctl run orphan_exits >/dev/null 2>&1 || fails=$((fails + 1))
done
[ $fails -eq 0 ] && ok "serve: the runs succeed" || not_ok "serve: $fails runs failed"
no_survivors "serve: no escaped daemon left" "$S/escape.pids" "$S/deep.pids"
kids=$(cat /proc/$SERVER/task/*/children 2>/dev/null | tr -s ' \n' ' ')
expect_match "[${kids# }]" '^\[ ?\]$' "serve: no child (zombie or not) left under the server"
expect_exit 5 "serve: a step looping past its deadline times out" -- \
    env NDF_RUNTIME_DIR=$S/run $R ctl run spin --timeout 0.3
expect_exit 0 "serve: the server goes on with a replaced worker" -- env NDF_RUNTIME_DIR=$S/run $R ctl run nop
expect_exit 0 "serve: ctl status" -- env NDF_RUNTIME_DIR=$S/run $R ctl status
expect_match "$out" "^server: 1 worker\(s\) abandoned in steps that overran their deadline \(1 replaced, 0 not replaced\)$" \
    "serve: ctl status reports the abandoned worker"
expect_exit 0 "serve: ping" -- env NDF_RUNTIME_DIR=$S/run $R ctl ping
expect_match "$out" '"workers":2,"workers_active":2,"workers_abandoned":1,"workers_replaced":1,"workers_unreplaced":0' \
    "serve: ping reports the abandoned and replaced worker"
expect_exit 0 "serve: and again" -- env NDF_RUNTIME_DIR=$S/run $R ctl run nop
kill -TERM $SERVER
wait $SERVER
rc=$?
[ "$rc" -eq 0 ] && ok "serve: exits 0 on SIGTERM with a thread still in the plugin's step" \
    || not_ok "serve: exits 0 on SIGTERM with a thread still in the plugin's step (got $rc)"

# An in-process step that ignores its deadline holds a worker: the
# execution is given up on, the worker replaced, and ndf exits with the
# timeout status instead of crashing in the plugin it would have unloaded
# under the thread (it was exit 139).
expect_exit 5 "a step looping past its deadline: ndf run exits 5, no crash" -- $R run spin --timeout 0.3
expect_match "$err" "overran its deadline by" "it says the pattern overran"
expect_match "$err" "worker stuck in overrunning work abandoned and replaced" "and that its worker was replaced"
env --default-signal=INT,HUP,TERM $R run spin >"$S/out" 2>"$S/err" &
npid=$!
i=0
while [ "$(last_status spin)" != RUNNING ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.1
kill -INT $npid
wait $npid
rc=$?
[ "$rc" -eq 130 ] && ok "SIGINT to a run whose step ignores cancellation exits 130" \
    || not_ok "SIGINT to a run whose step ignores cancellation exits 130 (got $rc)"
expect_match "$(cat "$S/err")" "did not stop .* after it was cancelled" "it says the step did not stop"
expect_match "$(last_status spin)" '^CANCELLED$' "recorded CANCELLED"

# The process suite once more with cgroups off (the run above used a
# cgroup per step where the machine allows it).
NDF_CGROUP=off "$top_builddir/tests/check_spawn" >"$S/spawn.log" 2>&1 \
    && ok "check_spawn passes with NDF_CGROUP=off" \
    || { not_ok "check_spawn passes with NDF_CGROUP=off"; sed 's/^/#   /' "$S/spawn.log" | tail -5; }

# Crash notes: a step that kills the host still kills it (no isolation
# yet), but the handler names what ran, and the next start reports it.
# (The pause lets the store record the execution as RUNNING first: a crash
# before that leaves no row to mark CRASHED.)
# A sanitizer's own handler takes these signals (ndf then leaves it be).
# A stack overflow too: the handler runs on the thread's alternate stack.
crashes="crashy:boom:mb_null:139:11:SIGSEGV aborts:ab:mb_abort:134:6:SIGABRT overflow:deep:mb_overflow:139:11:SIGSEGV"
case "${NDF_SAN_CFLAGS:-}" in
*sanitize=*)
    crashes=""
    ok "# SKIP crash notes: a sanitizer build (${NDF_SAN_CFLAGS}) handles fatal signals itself"
    ;;
esac
for c in $crashes; do
    oldifs=$IFS
    IFS=:
    set -- $c
    IFS=$oldifs
    expect_exit $4 "$1: the host dies of $6 (exit $4)" -- $R run $1
    expect_match "$err" "^ndf: fatal signal $5 \\($6\\) in process [0-9]+ while running step '$2' \\(type $3, plugin misbehave, file [^)]*misbehave.so\\) of pattern '$1', execution [^ ]+$" \
        "$1: the handler names the step, plugin, pattern and execution"
    id=$(printf "%s\n" "$err" | sed -n "/^ndf: fatal signal/s/.*execution \\([^ ]*\\)$/\\1/p")
    [ -s "$S/state/crash-note" ] && ok "$1: a crash note is left in the state directory" \
        || not_ok "$1: a crash note is left in the state directory"
    expect_exit 0 "$1: the next start" -- $R runs $1 --limit 1
    expect_match "$err" "the previous ndf \\(pid [0-9]+\\) died of signal $5 \\($6\\) while running step '$2' .*execution $id \\(CRASHED in the store\\)" \
        "$1: the next start reports the note"
    expect_match "$out" "^$id +$1 +CRASHED " "$1: the execution is recorded CRASHED"
    expect_exit 0 "$1: ndf status" -- $R status "$id"
    expect_match "$out" "crashed: process [0-9]+ on [^ ]+ died of signal $5 \\($6\\) in step '$2' \\(type $3, plugin misbehave, file [^)]*misbehave.so\\)" \
        "$1: the store's CRASHED message carries the note"
    [ ! -e "$S/state/crash-note" ] && ok "$1: the note is reported once" || not_ok "$1: the note is reported once"
done

# A signal ignored on entry (nohup) stays ignored.
rm -f "$S"/*.pids
$R run seq >"$S/out" 2>"$S/err" &
npid=$!
wait_file "$S/seq_tree.pids"
kill -INT $npid  # ignored: a background job of this shell ignores SIGINT
sleep 0.3
alive $npid && ok "an ignored SIGINT is left ignored" || not_ok "an ignored SIGINT is left ignored"
kill -TERM $npid
wait $npid
rc=$?
[ "$rc" -eq 143 ] && ok "then SIGTERM exits 143" || not_ok "then SIGTERM exits 143 (got $rc)"
no_survivors "and leaves no process" "$S/seq_tree.pids"

finish
