#!/bin/sh
# `ndf run`, `ndf batch` and `ndf status` on a scratch configuration of exec
# steps: exit codes per outcome, fallback causes, a hung process tree killed
# at the deadline with no survivors, templating errors, batch order, and the
# record kept for a later `ndf status`.
. "$top_srcdir/tests/shell/lib.sh"
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<CONF
executor: { threads = 2; default_timeout = 30.0; kill_grace = 0.3; };
storage: { path = "$SCRATCH/state"; };
confidence: { threshold = 0.75; min_samples = 2; };
patterns = (
  { name = "ok"; type = "sequential";
    params = { steps = ( { name = "hello"; step = "exec";
                           params = { argv = [ "sh", "-c", "echo hello \${domain} \$NDF_ATTR_SIZE" ]; }; } ); }; },
  { name = "fails"; type = "sequential";
    params = { steps = ( { name = "boom"; step = "exec"; params = { argv = [ "sh", "-c", "exit 3" ]; }; } ); }; },
  { name = "gated"; type = "sequential"; confidence_threshold = 0.99; confidence_gate = "enforce";
    params = { steps = ( { name = "boom"; step = "exec"; params = { argv = [ "false" ]; }; } ); }; },
  { name = "nightly"; type = "sequential";
    params = { steps = ( { name = "backup"; step = "exec";
                           params = { argv = [ "sh", "-c", "test ! -e $SCRATCH/nightly.fail" ]; }; } ); }; },
  { name = "quiet"; type = "sequential"; confidence_threshold = 0.99; confidence_gate = "off";
    params = { steps = ( { name = "boom"; step = "exec"; params = { argv = [ "false" ]; }; } ); }; },
  { name = "hangs"; type = "sequential";
    params = { steps = ( { name = "tree"; step = "exec";
                           params = { argv = [ "sh", "-c", "sleep 1000 & echo \$! > $SCRATCH/pid; wait" ]; }; } ); }; },
  { name = "slow"; type = "sequential";
    params = { steps = ( { name = "nap"; step = "exec"; params = { argv = [ "sleep", "0.4" ]; }; } ); }; },
  { name = "sleeps"; type = "sequential";
    params = { steps = ( { name = "nap"; step = "exec"; params = { argv = [ "sleep", "60" ]; }; } ); }; },
  { name = "says"; type = "sequential";
    params = { steps = ( { name = "t"; step = "fail"; params = { message = "said \${attr.m}"; }; } ); }; },
  { name = "badvar"; type = "sequential";
    params = { steps = ( { name = "t"; step = "exec"; params = { argv = [ "echo", "\${nope}" ]; }; } ); }; },
  { name = "stnotfound"; type = "sequential";
    params = { steps = ( { name = "t"; step = "fail"; params = { status = "not found"; message = "checksum missing"; }; } ); }; },
  { name = "stvalidation"; type = "parallel";
    params = { tasks = ( { name = "t"; step = "fail"; params = { status = "validation failed"; }; } ); failure_tolerance = 0.0; }; },
  { name = "sttimeout"; type = "sequential";
    params = { steps = ( { name = "t"; step = "fail"; params = { status = "timed out"; }; } ); }; },
  { name = "stcancelled"; type = "sequential";
    params = { steps = ( { name = "t"; step = "fail"; params = { status = "cancelled"; }; } ); }; }
);
CONF
R="$NDF -c $CONF"

expect_exit 0 "a pattern that succeeds exits 0" -- $R run ok --domain web --attr size=3
expect_match "$err" '^step hello: COMPLETED' "progress names each step (plain lines off a terminal)"
expect_match "$err" '^pattern ok: COMPLETED in [0-9.]+s \(execution [^)]+\): 1 COMPLETED$' \
    "a summary ends the run"
expect_exit 0 "status shows the last execution" -- $R status
expect_match "$out" '^execution [0-9T]+-[0-9a-f]+-1: SUCCEEDED' "status names the execution and outcome"
expect_match "$out" '^  COMPLETED +step hello' "status lists the steps"
expect_exit 0 "status --json" -- $R status --json
expect_match "$out" '"stdout":"hello web 3\\n"' "captured output and context variables are kept"
id=$(printf '%s\n' "$out" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
expect_exit 0 "status by id" -- $R status "$id"
expect_exit 0 "runs lists it" -- $R runs
expect_match "$out" "^$id +ok +SUCCEEDED .* run " "runs names id, pattern, status and origin"
expect_exit 0 "runs --json" -- $R runs ok --status succeeded --limit 1 --json
expect_match "$out" "^\\[\\{\"id\":\"$id\"" "runs --json is an array, newest first"
expect_exit 0 "logs of one step" -- $R logs "$id" hello
expect_match "$out" '^hello web 3$' "logs prints the step's captured output"
expect_exit 0 "logs of the whole execution" -- $R logs "$id"
expect_match "$out" '^==> hello \(stdout\) <==$' "with a header per step and stream"
expect_exit 3 "logs of an unknown step exits 3" -- $R logs "$id" nope
expect_exit 3 "status of an unknown id exits 3" -- $R status no-such-id
expect_match "$err" "no execution with id 'no-such-id'" "and says so"
mode=$(stat -c %a "$SCRATCH/state")
expect_match "$mode" '^700$' "the storage directory is private"
# errno was read after the message was printed: a failing stderr turned
# "nothing recorded" (3) into a system error (8).
printf 'storage: { path = "%s/nothing"; };\n' "$SCRATCH" >"$SCRATCH/empty.conf"
expect_exit 3 "status with nothing recorded exits 3, even when stderr fails" -- \
    sh -c "$NDF -c '$SCRATCH/empty.conf' status 2>/dev/full"

expect_exit 1 "a failing pattern exits 1" -- $R run fails
expect_match "$err" 'exited with status 3' "the failure says why"
expect_exit 0 "show after a run" -- $R show fails
expect_match "$out" '^last execution: .*, failed in ' "show names the last execution's outcome"
expect_match "$out" '^  failed +[a-z_]+ ' "show lists the last execution's steps"
expect_exit 0 "show --json after a run" -- $R show --json fails
expect_match "$out" '"last_execution":\{"time":[0-9.]+,"duration":[0-9.]+,"outcome":"failed"' \
    "show --json carries the last execution"
expect_exit 3 "an unknown pattern exits 3" -- $R run nope
expect_match "$err" "no pattern named 'nope'" "and says so"

$R run gated >/dev/null 2>&1
$R run gated >/dev/null 2>&1
expect_exit 4 "the confidence gate exits 4" -- $R run gated
expect_match "$err" 'below its threshold' "and says why"
expect_exit 1 "--force passes the gate" -- $R run gated --force
expect_exit 0 "show of a gated pattern" -- $R show gated
expect_match "$out" "^gate: +enforce \(pattern\): .*refuses it \(exit 4\) unless --force" \
    "show says 'ndf run' refuses it"

# expect_no_match TEXT REGEX DESCRIPTION
expect_no_match() {
    if printf '%s\n' "$1" | grep -Eq -- "$2"; then
        not_ok "$3 (/$2/ matched)"
        printf '%s\n' "$1" | grep -E -- "$2" | head -5 | sed 's/^/#   /'
    else
        ok "$3"
    fi
}

# The default gate (warn): a pattern that fell below its threshold still
# runs, with a warning, and earns its confidence back by succeeding.
touch "$SCRATCH/nightly.fail"
$R run nightly >/dev/null 2>&1
$R run nightly >/dev/null 2>&1
rm -f "$SCRATCH/nightly.fail"
expect_exit 0 "show of a pattern below its threshold" -- $R show nightly
expect_match "$out" "^gate: +warn \(global\): .*'ndf run' runs it with a warning" \
    "show says it runs with a warning"
expect_match "$out" "^delegation: +held back" "and that delegation holds it back"
expect_exit 0 "analytics of it" -- $R analytics nightly
expect_match "$out" "runs it with a warning \(confidence_gate warn\)" "analytics says what the gate does"
expect_exit 0 "gate warn (the default): the pattern below its threshold runs" -- $R run nightly
expect_match "$err" "below its threshold 0\.750; running it anyway \(confidence gate 'warn'\)" \
    "with a warning"

i=0
while [ $i -lt 12 ]; do $R -q run nightly >/dev/null 2>&1; i=$((i + 1)); done
expect_exit 0 "after a run of successes" -- $R run nightly
expect_no_match "$err" "running it anyway" "it has earned its confidence back: no warning"
expect_exit 0 "show after it earned it back" -- $R show nightly
expect_no_match "$out" "^delegation: +held back" "delegation no longer holds it back"
expect_exit 1 "gate off: a pattern below its threshold runs" -- $R run quiet
expect_exit 1 "again" -- $R run quiet
expect_exit 1 "and again, below its threshold now" -- $R run quiet
expect_no_match "$err" "running it anyway" "without a word"

start=$(date +%s)
# 2 s: the tree must have written its pid before the deadline, or the
# check below would look at /proc//stat
expect_exit 5 "a hung process tree times out with exit 5" -- $R run hangs --timeout 2
expect_match "$err" 'killed by signal 15 \(timeout\)' "the step was stopped with SIGTERM"
pid=$(cat "$SCRATCH/pid")
[ -n "$pid" ] || not_ok "the tree wrote no pid within 2 s"
state=$(sed 's/.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null || echo gone)
expect_match "$state" '^(gone|Z|X)$' "the backgrounded child did not survive"
[ $(($(date +%s) - start)) -lt 10 ] && ok "it did not wait for the tree" || not_ok "it waited"

expect_exit 0 "fallback after a failure" -- $R run fails --fallback ok
expect_match "$err" "falling back to 'ok' \(cause: failure\)" "names the failure cause"
expect_exit 0 "fallback when not found" -- $R run nope --fallback ok
expect_match "$err" "\(cause: not found\)" "names the not-found cause"
expect_exit 0 "fallback at the confidence gate" -- $R run gated --fallback ok
expect_match "$err" "\(cause: confidence gate\)" "names the gate"
# The fallback runs under the same --timeout: 2 s leave it time to run
# however loaded the machine (0.1 s did not, under the sanitizers).
expect_exit 0 "fallback on timeout" -- $R run sleeps --timeout 2 --fallback ok
expect_match "$err" "\(cause: timeout\)" "names the timeout"
expect_exit 0 "status shows the fallback" -- $R status
expect_match "$out" '^fallback from sleeps \(cause: timeout\)' "with its cause"

# An unknown variable is found by the plan before any step runs (ndf plan).
expect_exit 2 "an unknown template variable refuses the run before it starts (exit 2)" -- $R run badvar
expect_match "$err" 'not started: .*unknown variable \$\{nope\}' "and names the variable"

# The status contract (ndf-plugin(7)): a step's status decides the step's
# and the execution's state, and the exit code is the execution's outcome.
expect_exit 1 "a step's 'not found' is a failed execution, not exit 3" -- $R run stnotfound
expect_match "$err" 'checksum missing' "with the step's message"
expect_exit 1 "a task's 'validation failed' is a failed execution, not exit 2" -- $R run stvalidation
expect_exit 5 "a step that times out times the execution out (exit 5)" -- $R run sttimeout
expect_exit 10 "a step that was cancelled cancels it (exit 10)" -- $R run stcancelled
expect_exit 0 "status after the contract runs" -- $R status --json
expect_match "$out" '"state":"CANCELLED"' "the step is CANCELLED in the record"
cat >"$SCRATCH/badstatus.conf" <<BAD
storage: { path = "$SCRATCH/state2"; };
patterns = (
  { name = "x"; type = "sequential";
    params = { steps = ( { name = "t"; step = "fail"; params = { status = "oops"; }; } ); }; }
);
BAD
expect_exit 2 "an unknown status name for the fail step is a configuration error" -- \
    $NDF -c "$SCRATCH/badstatus.conf" check-config
expect_match "$err" "badstatus.conf:4: .*unknown status 'oops'" "named with file:line"

expect_exit 0 "--json prints the record" -- $R run ok --json
expect_match "$out" '^\{"id":"[^"]+","pattern":"ok","done":true,"status":"ok"' "as one JSON object"
expect_exit 2 "a bad --timeout is a usage error" -- $R run ok --timeout abc

# A message carrying a context value is printed with its control
# characters escaped: no escape sequence from a value reaches a terminal.
esc=$(printf '\033]0;pwned\007\033[2J\r\302\233x')
expect_exit 1 "a step fails with a context value in its message" -- $R run says --attr "m=$esc"
expect_match "$err" 'said \\x1b]0;pwned\\x07\\x1b\[2J\\x0d\\u009bx' \
    "run escapes C0, DEL and C1 controls in messages"
if LC_ALL=C grep -q "$(printf '[\001-\010\013-\037\177]')" "$SCRATCH/err"; then
    not_ok "a control character reached the output raw"
else
    ok "no control character reaches the output raw"
fi
expect_exit 0 "status of that execution" -- $R status
expect_match "$out" 'said \\x1b]0;pwned' "status escapes them too"
if LC_ALL=C grep -q "$(printf '\033')" "$SCRATCH/out"; then
    not_ok "status printed an escape raw"
else
    ok "status printed no escape raw"
fi
expect_exit 2 "an empty long option name is refused" -- $R run ok --=x
expect_match "$err" "unrecognized option '--=x'\$" "and suggests nothing (it abbreviates no option)"

printf '%s\n' '{"pattern":"slow"}' 'not json' '{"pattern":"nope"}' \
    '{"pattern":"ok","context":{"domain":"d","priority":2}}' '' '{"pattern":"fails"}' \
    >"$SCRATCH/batch"
expect_exit 1 "batch exits 1 when an item failed" -- $R batch "$SCRATCH/batch"
lines=$(printf '%s\n' "$out" | sed -n 's/^{"line":\([0-9]*\).*/\1/p' | tr '\n' ' ')
expect_match "$lines" '^1 2 3 4 6 $' "one result per item, in input order"
expect_match "$out" '^\{"line":1,"pattern":"slow","success":true' "the slow first item is first"
expect_match "$out" '^\{"line":2,"success":false,"status":"invalid","error":"[^"]*:2: invalid JSON at column 1"' \
    "a bad line is reported with its number"
expect_match "$out" '^\{"line":3,"pattern":"nope","success":false,"status":"not found"' \
    "an unknown pattern is an error line"
expect_exit 1 "batch --sequential from stdin" -- sh -c "$R batch --sequential - <'$SCRATCH/batch'"
expect_match "$out" '"line":4,"pattern":"ok","success":true' "runs the same items"
# A comment or blank line is skipped, not glued to the lines after it.
printf '%s\n' '# a comment' '{"pattern":"ok"}' '   ' '{"pattern":"nope"}' >"$SCRATCH/batch-comment"
expect_exit 1 "batch after a comment line" -- $R batch --sequential "$SCRATCH/batch-comment"
lines=$(printf '%s\n' "$out" | sed -n 's/^{"line":\([0-9]*\).*/\1/p' | tr '\n' ' ')
expect_match "$lines" '^2 4 $' "the items after a comment and a blank line run"
printf '{"pattern":"ok"}\n{"pattern":"ok"}\000junk\n[1,2]\n' >"$SCRATCH/batch2"
head -c 1100000 /dev/zero | tr '\000' x >>"$SCRATCH/batch2"
echo >>"$SCRATCH/batch2"
expect_exit 1 "batch with hostile lines" -- $R batch --sequential "$SCRATCH/batch2"
expect_match "$out" '"line":1,"pattern":"ok","success":true' "a good line still runs"
expect_match "$out" '"line":2,.*the line contains a NUL byte' "a NUL byte is refused"
expect_match "$out" '"line":3,.*not a JSON object' "a non-object is refused"
expect_match "$out" '"line":4,.*line longer than 1048576 bytes' "an over-long line is refused"
printf '{"pattern":"ok"}\n' | $R batch - >/dev/null 2>&1 && ok "an all-good batch exits 0" ||
    not_ok "an all-good batch exits 0"
# A run loads the plugins its patterns use (here sequential, parallel and
# steps), once a scan has indexed what each file provides; a command that
# lists them loads them all.  glibc's loader says what it maps under
# LD_DEBUG=files; the copies are named NAME.HASH.pPID.so.
$R run ok >/dev/null 2>&1
maps=$(LD_DEBUG=files $R run ok 2>&1 >/dev/null)
case $maps in
*"file=libc.so"*)
    expect_match "$maps" 'file=[^ ]*/sequential[.][0-9a-f]*[.]p[0-9]*[.]so' "a run loads the type its patterns use"
    expect_match "$maps" 'file=[^ ]*/steps[.][0-9a-f]*[.]p[0-9]*[.]so' "and the plugin of their steps"
    case $maps in
    *"/meta."*|*"/agent."*) not_ok "a run loads plugins its patterns do not use" ;;
    *) ok "a run does not load the plugins its patterns do not use" ;;
    esac
    maps=$(LD_DEBUG=files $R plugins 2>&1 >/dev/null)
    expect_match "$maps" 'file=[^ ]*/meta[.][0-9a-f]*[.]p[0-9]*[.]so' "ndf plugins loads them all" ;;
*) ok "# SKIP the loader does not report what it maps (not glibc)" ;;
esac
finish
