#!/bin/sh
# Isolated step execution: the issue's table re-run with the misbehaving
# fixture's steps isolated (plugins.isolation = "auto": the fixture is not
# installed with ndf).  Under `ndf run` each failure is the step's, with a
# message naming the plugin, the step, the signal or status and the
# worker's pid, and ndf exits 1 (execution failed), never with the step's
# signal or exit status.  Under `ndf serve` with a client running a healthy
# pattern throughout: the server lives, the healthy client sees no failure,
# every failing execution is recorded with its reason, the leaking step
# leaves the server's memory alone, and no worker outlives the server.
# Results, metrics, log lines, output and ${steps.NAME.result} cross from
# the worker to the host; plugins.trust puts a plugin back in process.
#
# A killed or lost worker takes every process its call's step started
# with it, before the step's node is finished and before ndf exits.
#
# NDF_ISOLATION_LEAKS=N: calls of the 100 MB leak under serve (default 6).
# NDF_ISOLATION_TREE_N=N: rounds of each way of ending an isolated exec
# step's process tree (default 2).
. "$top_srcdir/tests/shell/lib.sh"
S=$SCRATCH
FIX=${NDF_FIXTURE_DIR:?run through make check}
mkdir "$S/plugins"
cp "$FIX/misbehave.so" "$S/plugins/"
export NDF_PLUGIN_PATH="$NDF_PLUGIN_PATH:$S/plugins"
RUN=$S/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
LEAKS=${NDF_ISOLATION_LEAKS:-6}
# bytes dd copies one at a time in the accounting test: CPU time of a process
ACCT_N=${NDF_ISOLATION_ACCT_N:-200000}
CONF=$S/ndf.conf
write_conf() { # extra plugins { } text
    cat >"$CONF" <<EOF
confidence: { threshold = 0.0; };
executor: { threads = 4; default_timeout = 30.0; kill_grace = 0.5; };
storage: { path = "$S/state"; history_limit = 100000; };
plugins: { memory_limit = 400; $1 };
patterns = (
  { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; },
  { name = "outer"; type = "sequential"; params = { steps = ( { name = "sub"; step = "pattern"; params = { pattern = "nop"; }; } ); }; },
  { name = "null"; type = "sequential"; params = { steps = ( { name = "b"; step = "mb_null"; } ); }; },
  { name = "exit"; type = "sequential"; params = { steps = ( { name = "b"; step = "mb_exit"; } ); }; },
  { name = "abort"; type = "sequential"; params = { steps = ( { name = "b"; step = "mb_abort"; } ); }; },
  { name = "overflow"; type = "sequential"; params = { steps = ( { name = "b"; step = "mb_overflow"; } ); }; },
  { name = "spin"; type = "sequential"; params = { steps = ( { name = "b"; step = "mb_spin"; timeout = 0.5; } ); }; },
  { name = "leak"; type = "sequential"; params = { steps = ( { name = "b"; step = "mb_leak"; } ); }; },
  { name = "undo"; type = "sequential";
    params = { steps = ( { name = "a"; step = "mb_undo_crash"; }, { name = "b"; step = "mb_null"; } ); }; },
  { name = "echo"; type = "sequential";
    params = { steps = ( { name = "first"; step = "mb_echo"; params = { text = "one"; }; },
                         { name = "second"; step = "mb_echo";
                           params = { text = "two"; template = "\${domain}/\${steps.first.result}"; }; },
                         { name = "sh"; step = "exec"; params = { argv = [ "sh", "-c", "echo out; echo err >&2" ]; }; } ); }; },
  { name = "daemon"; type = "sequential";
    params = { steps = ( { name = "d"; step = "mb_daemon"; params = { pidfile = "$S/daemon.pid"; }; } ); }; },
  { name = "daemon_spin"; type = "sequential";
    params = { steps = ( { name = "d"; step = "mb_daemon"; timeout = 0.5;
                           params = { pidfile = "$S/daemon_spin.pid"; spin = true; }; } ); }; },
  { name = "closefds"; type = "sequential"; params = { steps = ( { name = "b"; step = "mb_closefds"; } ); }; },
  { name = "closefds_linger"; type = "sequential";
    params = { steps = ( { name = "b"; step = "mb_closefds"; params = { seconds = 30.0; }; } ); }; },
  { name = "acct"; type = "sequential";
    params = { steps = ( { name = "cpu"; step = "exec"; params = { argv = [ "dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=$ACCT_N" ]; }; },
                         { name = "burn"; step = "mb_burn"; params = { seconds = 0.2; }; },
                         { name = "idle"; step = "noop"; } ); }; },
  { name = "balloon"; type = "sequential";
    params = { steps = ( { name = "b"; step = "mb_balloon"; },
                         { name = "e1"; step = "mb_echo"; },
                         { name = "e2"; step = "mb_echo"; } ); }; },
  { name = "hungry"; type = "sequential";
    params = { steps = ( { name = "big"; step = "exec"; params = { argv = [ "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1" ]; }; } ); }; },
  { name = "innocent"; type = "sequential";
    params = { steps = ( { name = "small"; step = "exec"; params = { argv = [ "true" ]; }; },
                         { name = "idle"; step = "noop"; } ); }; },
  { name = "perstep"; type = "sequential";
    params = { steps = ( { name = "iso"; step = "mb_echo"; },
                         { name = "inproc"; step = "mb_echo"; isolation = "none"; },
                         { name = "sh"; step = "exec"; isolation = "process"; params = { argv = [ "sh", "-c", "echo parent \$PPID" ]; }; },
                         { name = "sh2"; step = "exec"; params = { argv = [ "sh", "-c", "echo parent \$PPID" ]; }; } ); }; },
  { name = "daemon_hang"; type = "sequential";
    params = { steps = ( { name = "d"; step = "mb_daemon";
                           params = { pidfile = "$S/hang.pid"; spin = true; }; } ); }; },
  { name = "say"; type = "sequential";
    params = { steps = ( { name = "s"; step = "mb_echo"; params = { say = "a warning from the step"; }; } ); }; },
  { name = "wait"; type = "sequential";
    params = { steps = ( { name = "w"; step = "mb_echo"; params = { wait = 60.0; }; } ); }; }
);
EOF
}
write_conf ""
export NDF_CONFIG=$CONF

# leftovers: the pids of step workers of this test (their command line
# names its runtime directory), space-separated.
leftovers() { pgrep -f -- "__step-worker $RUN" | tr '\n' ' ' | sed 's/ $//'; }
# last_id PATTERN: the newest execution of PATTERN.
last_id() { "$NDF" runs "$1" 2>/dev/null | awk 'NR==2{print $1}'; }

# ---- ndf run: each row of the table ----
row() { # PATTERN STATE REGEX what [EXIT]
    expect_exit "${5:-1}" "run $1: ndf survives, exit ${5:-1} ($4)" -- "$NDF" run "$1"
    expect_match "$err" "step b: $2 \\([0-9.]+s\\): $3" "run $1: the step says why"
    id=$(last_id "$1")
    st=$("$NDF" status "$id" 2>&1)
    expect_match "$st" "$2 +step b .*$3" "run $1: recorded $2 with the reason"
    l=$(leftovers)
    if [ -z "$l" ]; then ok "run $1: no worker left"; else not_ok "run $1: workers left: $l"; fi
}
W="of plugin 'misbehave'"
# Under AddressSanitizer (CI) a worker's SIGSEGV is caught and reported by
# the sanitizer, which then exits 1, or aborts with abort_on_error=1: any of
# these endings is the crash, named.
SEGV="(was killed by signal 11 \\(SIGSEGV\\)|exited with status 1: a step must never exit the process)"
[ -n "${NDF_SAN_CFLAGS:-}" ] &&
    SEGV="(was killed by signal 11 \\(SIGSEGV\\)|was killed by signal 6 \\(SIGABRT\\)|exited with status 1: a step must never exit the process)"
row null FAILED "step 'mb_null' $W: its isolated worker \\(pid [0-9]+\\) $SEGV" "NULL dereference"
row exit FAILED "step 'mb_exit' $W: its isolated worker \\(pid [0-9]+\\) exited with status 3: a step must never exit the process" "exit(3)"
row abort FAILED "step 'mb_abort' $W: its isolated worker \\(pid [0-9]+\\) was killed by signal 6 \\(SIGABRT\\)" "abort"
row overflow FAILED "step 'mb_overflow' $W: its isolated worker \\(pid [0-9]+\\) $SEGV" "stack overflow"
row closefds FAILED "step 'mb_closefds' $W: its isolated worker \\(pid [0-9]+\\) lost its connection to the host because the step closed it: a step must not close descriptors it did not open" "closes fds 3-63"
row closefds_linger FAILED "step 'mb_closefds' $W: its isolated worker \\(pid [0-9]+\\) closed its connection to the host but went on running, so it was killed \\(SIGKILL\\): a step must not close descriptors it did not open" "closes fds 3-63 and goes on"
row spin TIMED_OUT "step 'mb_spin' $W did not return 0.5 s after its deadline: its isolated worker \\(pid [0-9]+\\) was killed \\(SIGKILL\\)" "a loop ignoring cancellation" 5

expect_exit 1 "run undo: a crash in undo fails the rollback, not ndf" -- "$NDF" run undo
expect_match "$err" "step a: FAILED \\([0-9.]+s\\): undo failed: step 'mb_undo_crash' $W \\(undo\\): its isolated worker \\(pid [0-9]+\\) $SEGV" \
    "run undo: the undo's crash is named"
expect_exit 0 "run leak: a leak in a worker completes" -- "$NDF" run leak

# ---- resource accounting: each figure on the node that used it ----
# fig ID NODE NAME: the figure NAME on step NODE's measured: line in `status`.
fig() {
    "$NDF" status "$1" 2>/dev/null | awk -v n="$2" -v f="$3" '
        $2 == "step" { on = ($3 == n); next }
        on && /measured: / { sub(/.*measured: /, ""); k = split($0, a, ", ")
            for (i = 1; i <= k; i++) { split(a[i], b, " "); if (b[1] == f) print b[2] } exit }'
}
# atleast X Y / below X Y: numeric comparisons of figures (empty: false)
atleast() { [ -n "$1" ] && awk -v x="$1" -v y="$2" 'BEGIN { exit !(x + 0 >= y + 0) }'; }
below() { [ -n "$1" ] && awk -v x="$1" -v y="$2" 'BEGIN { exit !(x + 0 < y + 0) }'; }
expect_exit 0 "run acct" -- "$NDF" run acct
id=$(last_id acct)
pu=$(fig "$id" cpu ndf.proc_user_s)
ps=$(fig "$id" cpu ndf.proc_sys_s)
pcpu=$(awk -v a="$pu" -v b="$ps" 'BEGIN { print a + b }')
atleast "$pcpu" 0.05 && ok "acct: the exec step's process CPU is on its node ($pcpu s)" ||
    not_ok "acct: exec step's process CPU $pu + $ps: $("$NDF" status "$id" 2>&1)"
[ -z "$(fig "$id" cpu ndf.worker_user_s)" ] && ok "acct: no worker figure on the exec node" ||
    not_ok "acct: the exec node has a worker figure"
wu=$(awk -v a="$(fig "$id" burn ndf.worker_user_s)" -v b="$(fig "$id" burn ndf.worker_sys_s)" 'BEGIN { print a + b }')
atleast "$wu" 0.15 && ok "acct: the isolated step's CPU is its worker's during the call ($wu s)" ||
    not_ok "acct: mb_burn's worker CPU '$wu': $("$NDF" status "$id" 2>&1)"
[ -z "$(fig "$id" burn ndf.proc_user_s)" ] && ok "acct: no process figure on the isolated node" ||
    not_ok "acct: the isolated node has a process figure"
it=$(fig "$id" idle ndf.thread_cpu_s)
below "$it" 0.05 && ok "acct: the in-process no-op shows its own thread's CPU only ($it s)" ||
    not_ok "acct: noop's thread CPU '$it': $("$NDF" status "$id" 2>&1)"
j=$("$NDF" status --json "$id" 2>&1)
tot=$(printf '%s\n' "$j" | sed -n 's/.*"cpu":\([0-9.e+-]*\).*/\1/p' | head -1)
atleast "$tot" "$(awk -v a="$pcpu" -v b="$wu" 'BEGIN { print a + b }')" &&
    ok "acct: the execution's cpu ($tot s) sums its steps'" || not_ok "acct: execution cpu '$tot' in $j"
expect_match "$j" '"ndf\.worker_maxrss_kb":[1-9]' "acct: --json has the worker's peak"
expect_match "$("$NDF" status "$id" 2>&1)" "^used: cpu [0-9.]+s, largest process peak [0-9.]+ MiB" "acct: status says what the execution used"
# A worker's peak is per call: 100 MB mapped and unmapped within one call
# is on that call, not on the next calls the same worker serves (the mark
# is reset after a call that faulted memory in, and kept after one that
# did not).
expect_exit 0 "run balloon" -- "$NDF" run balloon
id=$(last_id balloon)
blog=$("$NDF" logs "$id" 2>&1)
bp=$(printf '%s\n' "$blog" | sed -n 's/.*balloon in pid \([0-9]*\).*/\1/p' | head -1)
ep=$(printf '%s\n' "$blog" | sed -n 's/.*echo in pid \([0-9]*\).*/\1/p' | sort -u | tr '\n' ' ')
bk=$(fig "$id" b ndf.worker_maxrss_kb)
e1k=$(fig "$id" e1 ndf.worker_maxrss_kb)
e2k=$(fig "$id" e2 ndf.worker_maxrss_kb)
atleast "$bk" 100000 && ok "balloon: its 100 MB are on its call ($bk kB)" || not_ok "balloon: peak '$bk' kB"
if [ -n "$bp" ] && [ "$ep" = "$bp " ]; then
    below "$e1k" 51200 && ok "balloon: the next call in the same worker has its own peak ($e1k kB)" ||
        not_ok "balloon: the next call shows the balloon: '$e1k' kB"
    below "$e2k" 51200 && ok "balloon: and so has the one after ($e2k kB)" ||
        not_ok "balloon: the third call shows '$e2k' kB"
else
    ok "# SKIP balloon: the calls ran in different workers ($bp / $ep)"
    ok "# SKIP balloon: (idem)"
fi

# A 100 MiB process beside an innocent one in the same ndf process: the
# innocent execution does not show it (process-wide figures did).
expect_exit 0 "batch: hungry and innocent at once" -- "$NDF" batch --items '{"pattern": "hungry"}
{"pattern": "innocent"}'
hid=$(last_id hungry)
iid=$(last_id innocent)
hk=$(fig "$hid" big ndf.proc_maxrss_kb)
atleast "$hk" 100000 && ok "hungry: its dd's peak is on its node ($hk kB)" || not_ok "hungry: peak '$hk'"
ij=$("$NDF" status --json "$iid" 2>&1)
ik=$(printf '%s\n' "$ij" | sed -n 's/.*"peak_rss_kb":\([0-9]*\).*/\1/p' | head -1)
below "$ik" 51200 && ok "innocent: its peak ($ik kB) is its own, not the 100 MiB beside it" ||
    not_ok "innocent: peak '$ik' kB: $ij"

# ---- what crosses the socket ----
expect_exit 0 "run echo" -- "$NDF" run echo --domain dom
id=$(last_id echo)
logs=$("$NDF" logs "$id" 2>&1)
expect_match "$logs" "expanded: dom/one" "expand in a worker sees the context and an earlier step's result"
expect_match "$logs" "echo in pid [0-9]+" "node_log lines reach the record"
expect_match "$logs" "^out$" "an isolated exec step's stdout reaches the record"
expect_match "$logs" "^err$" "and its stderr"
expect_match "$logs" "^result: two$" "the step's result is kept"
expect_match "$logs" "^metric echo\\.len = 3$" "and its metric"
wpid=$(printf '%s\n' "$logs" | sed -n 's/.*echo in pid \([0-9]*\).*/\1/p' | head -1)
# The worker is gone with ndf run: its pid is not ndf's and not alive.
# alive PID: the process exists and is not a zombie.
alive() { [ -r "/proc/$1/stat" ] && ! awk '{exit !($3 == "Z")}' "/proc/$1/stat" 2>/dev/null; }
i=0
while [ -n "$wpid" ] && alive "$wpid" && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
if [ -n "$wpid" ] && ! alive "$wpid"; then
    ok "the worker ended with ndf run"
else
    not_ok "worker $wpid still runs: $(cat "/proc/$wpid/stat" "/proc/$wpid/wchan" 2>&1; ls -l "/proc/$wpid/fd" 2>&1)"
fi

# ---- a step's setsid'd daemon (double fork) does not outlive its call ----
# gone PIDFILE WHAT: the pid in PIDFILE is not alive (within 5 s).
gone() {
    dpid=$(cat "$1" 2>/dev/null)
    i=0
    while [ -n "$dpid" ] && alive "$dpid" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    if [ -z "$dpid" ]; then
        not_ok "$2: the daemon wrote no pid"
    elif alive "$dpid"; then
        not_ok "$2: daemon $dpid still runs: $(tr '\0' ' ' <"/proc/$dpid/environ" | grep -o 'NDF_STEP=[^ ]*'; ls -l "/proc/$dpid/fd" 2>&1)"
        kill -KILL "$dpid" 2>/dev/null
    else
        ok "$2: daemon $dpid is gone"
    fi
}
# stdout and stderr through a pipe, bounded: a daemon holding either
# would hang `cat` (timeout's 124)
timeout 20 sh -c '{ "$1" run daemon; echo "exit $?"; } 2>&1 | cat' sh "$NDF" >"$S/daemon.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q '^exit 0$' "$S/daemon.out"; then
    ok "run daemon | cat ends"
else
    not_ok "run daemon | cat: timeout's exit $rc: $(cat "$S/daemon.out")"
fi
gone "$S/daemon.pid" "run daemon"
# the worker killed (a step ignoring its deadline) with the daemon running:
# the host finds the daemon by the worker's NDF_STEP token
timeout 20 sh -c '"$1" run daemon_spin 2>&1 | cat' sh "$NDF" >"$S/daemon_spin.out" 2>&1
expect_match "$(cat "$S/daemon_spin.out")" "step d: TIMED_OUT" "run daemon_spin: the worker is killed at the deadline"
gone "$S/daemon_spin.pid" "run daemon_spin"
l=$(leftovers)
if [ -z "$l" ]; then ok "run daemon: no worker left"; else not_ok "run daemon: workers left: $l"; fi
rm -f "$S/daemon.pid" "$S/daemon_spin.pid"

# ---- a worker's stderr reaches the host's log ----
expect_exit 0 "run say" -- "$NDF" run say
expect_match "$err" "step worker [0-9]+ \\(plugin 'misbehave'\\): a warning from the step" \
    "what a step writes to its worker's stderr is logged, naming the worker"

# ---- isolation on a step binding overrides its plugin's policy ----
expect_exit 0 "run perstep" -- "$NDF" run perstep
id=$(last_id perstep)
hp=$("$NDF" status "$id" 2>&1 | sed -n 's/.*(pid \([0-9]*\))$/\1/p' | head -1)
# pid_of NODE: the pid mb_echo logged in NODE; parent_of NODE: the parent
# pid an exec step's shell printed
pid_of() { "$NDF" logs "$id" "$1" 2>&1 | sed -n 's/.*echo in pid \([0-9]*\).*/\1/p' | head -1; }
parent_of() { "$NDF" logs "$id" "$1" 2>&1 | sed -n 's/^parent \([0-9]*\)$/\1/p' | head -1; }
p1=$(pid_of iso)
p2=$(pid_of inproc)
p3=$(parent_of sh)
p4=$(parent_of sh2)
[ -n "$hp" ] && [ -n "$p1" ] && [ "$p1" != "$hp" ] && ok "perstep: the plugin's step runs in a worker by default ($p1, ndf $hp)" ||
    not_ok "perstep: iso in pid '$p1', ndf '$hp'"
[ -n "$p2" ] && [ "$p2" = "$hp" ] && ok "perstep: isolation = \"none\" runs it in ndf itself" ||
    not_ok "perstep: inproc in pid '$p2', ndf '$hp'"
[ -n "$p3" ] && [ "$p3" != "$hp" ] && ok "perstep: isolation = \"process\" puts a bundled step in a worker ($p3)" ||
    not_ok "perstep: sh's parent '$p3', ndf '$hp'"
[ -n "$p4" ] && [ "$p4" = "$hp" ] && ok "perstep: the same bundled step without the key runs in process" ||
    not_ok "perstep: sh2's parent '$p4', ndf '$hp'"
cat >"$S/bad_iso.conf" <<EOF
plugins: { };
patterns = (
  { name = "b"; type = "sequential";
    params = { steps = ( { name = "x"; step = "noop";
                           isolation = "sometimes"; } ); }; }
);
EOF
expect_exit 2 "a binding's unknown isolation is a configuration error" -- env NDF_CONFIG="$S/bad_iso.conf" "$NDF" check-config
expect_match "$err" "bad_iso\\.conf:5: 'isolation' is 'sometimes', expected none or process" "named with file:line"

# ---- plugins.trust puts it back in process ----
write_conf 'trust = [ "misbehave" ];'
expect_exit 0 "trusted: run echo" -- "$NDF" run echo --domain dom
logs=$("$NDF" logs "$(last_id echo)" 2>&1)
expect_match "$logs" "expanded: dom/one" "trusted: same outcome in process"
write_conf 'isolation = "none";'
expect_exit 0 "isolation none: run echo" -- "$NDF" run echo
# The pattern step needs the host's executor: from a build tree without
# NDF_BUNDLED_PLUGIN_DIR its plugin is not "installed with ndf", so it runs
# isolated, and the failure says why and what to do.
write_conf ""
expect_exit 0 "pattern step, bundled: in process" -- "$NDF" run outer
expect_exit 1 "pattern step, not bundled: isolated, fails" -- env -u NDF_BUNDLED_PLUGIN_DIR "$NDF" run outer
expect_match "$err" "run_pattern 'nop': this step runs isolated in a step worker \\(its plugin 'steps' is not installed with ndf\\), and a worker cannot run patterns; trust the plugin \\(plugins\\.trust = \\[ \"steps\" \\]\\) or run steps in process \\(plugins\\.isolation = \"none\"\\)" \
    "pattern step isolated: the message says why and what to do"
write_conf 'trust = [ "steps" ];'
expect_exit 0 "pattern step, not bundled, trusted" -- env -u NDF_BUNDLED_PLUGIN_DIR "$NDF" run outer
write_conf 'isolation = "none";'
expect_exit 0 "pattern step, not bundled, isolation none" -- env -u NDF_BUNDLED_PLUGIN_DIR "$NDF" run outer
write_conf 'isolation = "bogus";'
expect_exit 2 "an unknown isolation mode is a configuration error" -- "$NDF" check-config
expect_match "$err" "ndf\\.conf:4: 'plugins\\.isolation' is 'bogus', expected auto, none or process" "named with file:line"
write_conf 'isolate = [ 7 ];'
expect_exit 2 "isolate takes names" -- "$NDF" check-config
write_conf ""

# ---- cancellation crosses to the worker ----
env --default-signal=INT,HUP,TERM "$NDF" run wait >"$S/wait.out" 2>&1 &
RP=$!
i=0
while [ -z "$(leftovers)" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
l=$(leftovers)
if [ -n "$l" ]; then ok "a worker runs the isolated step (pid $l)"; else not_ok "no worker seen"; fi
sleep 0.3
kill -INT $RP
wait $RP
rc=$?
expect_match "$(cat "$S/wait.out")" "step w: CANCELLED" "SIGINT cancels an isolated step in its worker (exit $rc)"
l=$(leftovers)
if [ -z "$l" ]; then ok "no worker left after the cancelled run"; else not_ok "workers left: $l"; fi

# ---- ndf SIGKILLed during an isolated call ----
# The store knows the worker's group and token: the next ndf to open it
# kills the worker and the daemon its step left (setsid'd).
rm -f "$S/hang.pid"
"$NDF" run daemon_hang >/dev/null 2>&1 &
RP=$!
i=0
while [ ! -s "$S/hang.pid" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.5 # the worker's row is queued, not waited for
kill -KILL $RP
wait $RP 2>/dev/null
l=$(leftovers)
[ -n "$l" ] && ok "ndf killed: its worker ($l) outlived it (busy in the step)" ||
    not_ok "ndf killed: no worker left to recover (the test proves nothing)"
expect_exit 0 "ndf killed: the next command recovers the store" -- "$NDF" runs daemon_hang --limit 1 --json
expect_match "$err" "killed [1-9][0-9]* leftover process" "recovery says it killed the worker's leftovers"
expect_match "$out" '"status":"CRASHED"' "the execution is CRASHED"
gone "$S/hang.pid" "ndf killed"
i=0
while [ -n "$(leftovers)" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
l=$(leftovers)
if [ -z "$l" ]; then ok "ndf killed: recovery killed its worker"; else not_ok "ndf killed: workers left: $l"; kill -KILL $l; fi
rm -f "$S/hang.pid"

# ---- a killed worker's step leaves no process behind ----
# An exec step in a worker: a shell that ignores SIGTERM (or not), its
# child sleep and a setsid'd sleep, their pids written down.  The run
# ends by its timeout (the worker stops the step at the deadline plus
# kill_grace and the host kills the worker just after), by SIGTERM to
# `ndf run` (cancellation), or by the worker being SIGKILLed mid-call (the
# host alone must then find the step's processes, re-parented to it).
# After each, none of them is alive: not beside the failed node, not past
# ndf's exit.
TREE_N=${NDF_ISOLATION_TREE_N:-2}
TC=$S/tree.conf
TP=$S/tree.pids
cat >"$TC" <<EOF
executor: { threads = 2; kill_grace = 0.5; };
storage: { path = "$S/tree_state"; };
patterns = (
  { name = "stubborn"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec"; isolation = "process";
      params = { shell = true; command = "trap '' TERM INT; echo \$\$\$\$ >> $TP; sleep 20 & echo \$\$! >> $TP; setsid sleep 20 & echo \$\$! >> $TP; wait"; }; } ); }; },
  { name = "polite"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec"; isolation = "process";
      params = { shell = true; command = "echo \$\$\$\$ >> $TP; sleep 20 & echo \$\$! >> $TP; setsid sleep 20 & echo \$\$! >> $TP; wait"; }; } ); }; }
);
EOF
# tree_alive: the pids of $TP still running as the step's sh or sleep.
tree_alive() {
    for p in $(cat "$TP" 2>/dev/null); do
        [ -r "/proc/$p/status" ] || continue
        [ "$(awk '/^State:/{print $2}' "/proc/$p/status" 2>/dev/null)" = Z ] && continue
        case $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) in
        sleep\ 20* | sh\ *) printf '%s ' "$p" ;;
        esac
    done
}
# tree_wait: until the step wrote its three pids (5 s at most).
tree_wait() {
    i=0
    while [ "$(cat "$TP" 2>/dev/null | wc -l)" -lt 3 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}
tree_check() { # WHAT
    n=$(cat "$TP" 2>/dev/null | wc -l)
    if [ "$n" -lt 3 ]; then
        not_ok "$1: the step did not start its processes ($n pids)"
        return
    fi
    a=$(tree_alive)
    if [ -z "$a" ]; then
        ok "$1: none of the step's processes is left"
    else
        not_ok "$1: the step's processes outlived it: $a"
        kill -KILL $a 2>/dev/null
    fi
    l=$(leftovers)
    [ -z "$l" ] && ok "$1: no worker left" || not_ok "$1: workers left: $l"
}
r=0
while [ $r -lt "$TREE_N" ]; do
    r=$((r + 1))
    for pt in stubborn polite; do
        rm -f "$TP"
        expect_exit 5 "$pt round $r: timed out (exit 5)" -- env NDF_CONFIG="$TC" "$NDF" run "$pt" --timeout 1
        tree_check "$pt round $r, timeout"

        rm -f "$TP"
        env --default-signal=INT,HUP,TERM NDF_CONFIG="$TC" "$NDF" run "$pt" >"$S/tree.out" 2>&1 &
        RP=$!
        tree_wait
        kill -TERM $RP
        wait $RP
        rc=$?
        expect_match "$(cat "$S/tree.out")" "step s: CANCELLED" "$pt round $r: SIGTERM cancels the run (exit $rc)"
        tree_check "$pt round $r, SIGTERM to ndf run"

        rm -f "$TP"
        env NDF_CONFIG="$TC" "$NDF" run "$pt" >"$S/tree.out" 2>&1 &
        RP=$!
        tree_wait
        wk=$(awk '/^PPid:/{print $2}' "/proc/$(head -1 "$TP")/status" 2>/dev/null)
        case " $(leftovers) " in
        *" $wk "*) kill -KILL "$wk" ;;
        *) not_ok "$pt round $r: the step's shell ($(head -1 "$TP")) is not a worker's child ($wk)" ;;
        esac
        wait $RP
        rc=$?
        [ $rc -eq 1 ] && ok "$pt round $r: a killed worker fails the run (exit 1)" ||
            not_ok "$pt round $r: a killed worker: exit $rc, wanted 1"
        expect_match "$(cat "$S/tree.out")" "its isolated worker \\(pid $wk\\) was killed by signal 9 \\(SIGKILL\\)" \
            "$pt round $r: the killed worker is named"
        tree_check "$pt round $r, worker killed"
    done
done

# ---- ndf serve, with a healthy client throughout ----
"$NDF" serve 2>"$S/serve.log" &
SERVER=$!
for i in $(seq 1 200); do
    "$NDF" ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
: >"$S/healthy.fail"
: >"$S/healthy.ok"
(
    while [ ! -e "$S/stop" ]; do
        if "$NDF" ctl run nop >/dev/null 2>"$S/healthy.err"; then
            echo . >>"$S/healthy.ok"
        else
            cat "$S/healthy.err" >>"$S/healthy.fail"
        fi
    done
) &
HEALTHY=$!
rss() { awk '/^VmRSS/{print $2}' "/proc/$SERVER/status"; }
sleep 0.3
RSS0=$(rss)
for p in null exit abort overflow spin; do
    code=1
    [ $p = spin ] && code=5
    expect_exit $code "serve $p: the execution fails (exit $code)" -- "$NDF" ctl run "$p"
    if kill -0 $SERVER 2>/dev/null; then ok "serve $p: the server lives"; else not_ok "serve $p: the server died"; fi
    id=$(last_id "$p")
    st=$("$NDF" status "$id" 2>&1)
    expect_match "$st" "(FAILED|TIMED_OUT) +step b .*'mb_$p' $W.*isolated worker \\(pid [0-9]+\\)" "serve $p: recorded with the reason"
done
expect_exit 1 "serve undo" -- "$NDF" ctl run undo
i=0
while [ $i -lt "$LEAKS" ]; do
    "$NDF" ctl run leak >/dev/null 2>&1 || not_ok "serve leak call $i failed"
    i=$((i + 1))
done
ok "serve: $LEAKS leak calls of 100 MB"
RSS1=$(rss)
echo "# server VmRSS $RSS0 kB -> $RSS1 kB after $LEAKS leaks of 100 MB"
if [ "$RSS1" -lt $((RSS0 + 51200)) ]; then ok "the server's memory did not take the leaks"; else not_ok "the server grew $RSS0 -> $RSS1 kB"; fi
expect_exit 0 "serve echo" -- "$NDF" ctl run echo
expect_exit 0 "serve daemon" -- "$NDF" ctl run daemon
expect_exit 5 "serve daemon_spin" -- "$NDF" ctl run daemon_spin
expect_exit 0 "ctl ping after the table" -- "$NDF" ctl ping
touch "$S/stop"
wait $HEALTHY
nok=$(wc -l <"$S/healthy.ok")
if [ -s "$S/healthy.fail" ]; then
    not_ok "the healthy client failed: $(head -3 "$S/healthy.fail")"
else
    ok "the healthy client saw no failure ($nok runs)"
fi
[ "$nok" -gt 0 ] && ok "the healthy client ran throughout" || not_ok "the healthy client never ran"
kill -TERM $SERVER
wait $SERVER
i=0
while [ -n "$(leftovers)" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
l=$(leftovers)
if [ -z "$l" ]; then ok "no worker outlives the server"; else not_ok "workers left after serve: $l"; fi
gone "$S/daemon.pid" "serve daemon"
gone "$S/daemon_spin.pid" "serve daemon_spin"
finish
