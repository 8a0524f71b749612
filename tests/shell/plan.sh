#!/bin/sh
# Looking before leaping: `ndf plan` and `ndf run --dry-run` for each
# pattern type with their deadlines and sources, unresolved ${...} refusing
# a run before any step starts, `ndf graph` as text and as dot that
# Graphviz parses, for a pattern and for an execution; the timeout rule
# (a pattern's own timeout over executor.default_timeout, max_timeout the
# only cap); and the reason of a failed step under its FAILED line.
. "$top_srcdir/tests/shell/lib.sh"
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<CONF
executor: { threads = 2; default_timeout = 0.3; pattern_timeout = 20.0; kill_grace = 0.2; };
storage: { path = "$SCRATCH/state"; };
patterns = (
  { name = "backup"; type = "sequential"; description = "nightly backup"; timeout = 15.0;
    params = { steps = (
      { name = "snapshot"; step = "exec"; timeout = 30.0;
        params = { argv = [ "echo", "snapshot of \${attr.db}" ]; undo = [ "echo", "drop \${attr.db}" ]; }; },
      { name = "rotate"; step = "exec"; retries = 2;
        params = { shell = true;
                   command = "for i in 1 2 3 4 5 6 7 8; do echo noise \$\$i >&2; done; echo 'keep must be a number' >&2; exit 2"; }; } ); }; },
  { name = "deploy"; type = "parallel"; timeout = 40.0;
    params = { tasks = (
      { name = "api"; step = "exec"; cpu = 0.1; params = { argv = [ "true" ]; }; },
      { name = "web"; step = "exec"; timeout = 90.0; params = { argv = [ "true" ]; }; },
      { name = "check"; step = "exec"; depends_on = [ "api", "web" ]; params = { argv = [ "true" ]; }; } ); }; },
  { name = "migrate"; type = "meta";
    params = { timeout_seconds = 30.0; phases = (
      { name = "prepare"; patterns = [ "backup", "tidy" ]; },
      { name = "roll"; patterns = [ "deploy", "slow" ]; coordination = "parallel"; } ); }; },
  { name = "tidy"; type = "sequential";
    params = { steps = ( { name = "t"; step = "noop"; } ); }; },
  { name = "slow"; type = "sequential"; timeout = 2.0;
    params = { steps = ( { name = "nap"; step = "exec"; params = { argv = [ "sleep", "0.8" ]; }; } ); }; },
  { name = "badvar"; type = "sequential";
    params = { steps = (
      { name = "mark"; step = "exec"; params = { argv = [ "touch", "$SCRATCH/marked" ]; }; },
      { name = "use"; step = "exec"; params = { argv = [ "echo", "\${attr.target}" ]; }; } ); }; }
);
CONF
R="$NDF -c $CONF"

# ---- plan, per pattern type ----
expect_exit 0 "plan of a sequential pattern" -- $R plan backup --attr db=sales
expect_match "$out" '^pattern backup \(sequential\): nightly backup$' "names the pattern and its type"
expect_match "$out" '^  deadline: 15 s \(the pattern.s timeout\)$' "its own timeout, and where it comes from"
expect_match "$out" '^  step snapshot \(exec\)$' "lists each step with its type"
expect_match "$out" '^    argv: \["echo","snapshot of sales"\]$' "parameters expanded as they would run"
expect_match "$out" '^    rollback: \["echo","drop sales"\]$' "the undo, expanded"
expect_match "$out" '^    deadline: 15 s \(the pattern.s deadline\); its own 30 s does not apply$' \
    "a step timeout longer than its pattern's deadline is said not to apply"
expect_match "$out" '^    retries: 2$' "retries"
expect_match "$out" '^  order: one after another$' "a sequence is a chain"

expect_exit 0 "plan of a parallel pattern" -- $R plan deploy
expect_match "$out" '^  deadline: 40 s \(the pattern.s timeout\)$' "its own timeout, and where it comes from"
expect_match "$out" '^  step check \(exec\) after api, web$' "dependencies"
expect_match "$out" '^    resources: cpu 0.1$' "resources"
expect_match "$out" '^  order: concurrent, each after what it depends on$' "tasks form a DAG"

expect_exit 0 "plan of a meta pattern" -- $R plan migrate --attr db=x
expect_match "$out" '^  deadline: 30 s \(the pattern.s params.timeout_seconds\)$' \
    "a type's timeout_seconds is the pattern's own timeout"
expect_match "$out" '^  phase roll \(parallel\)$' "phases with their coordination"
expect_match "$out" '^    pattern slow \(sequential\)$' "and the sub-patterns they run"
expect_match "$out" '^      deadline: 2 s \(the pattern.s timeout\)$' "each with its own deadline"
expect_match "$out" '^      deadline: 20 s \(executor.pattern_timeout\)$' \
    "a sub-pattern with none gets executor.pattern_timeout"
expect_match "$out" '^      deadline: 30 s \(the enclosing deadline\); its own 40 s does not apply$' \
    "one whose own is longer than what its parent has left gets that"
expect_exit 2 "plan of a pattern with no timeout" -- $R plan badvar
expect_match "$out" '^  deadline: 0.3 s \(executor.default_timeout\)$' \
    "gets the default, and says so"

expect_exit 0 "plan --json" -- $R plan deploy --json
expect_match "$out" '"source":[[:space:]]*"the pattern.s timeout"' "carries the deadline's source"
expect_exit 0 "plan --timeout replaces the pattern's own" -- $R plan deploy --timeout 7
expect_match "$out" '^  deadline: 7 s \(--timeout\)$' "and says so"
expect_exit 3 "plan of an unknown pattern exits 3" -- $R plan nope
expect_match "$err" "^ndf: plan: no pattern named 'nope'$" "in the command's error style"
expect_exit 2 "plan without a pattern is a usage error" -- $R plan

# ---- unresolved templates ----
expect_exit 2 "plan with an unresolved variable exits 2" -- $R plan badvar
expect_match "$out" "ERROR: $CONF:[0-9]+: pattern 'badvar', step 'use': unknown variable \\\$\{attr.target\}" \
    "naming the file, line, pattern, step and variable"
expect_exit 2 "run refuses it before any step starts" -- $R run badvar
expect_match "$err" "pattern 'badvar' not started: .*unknown variable" "and says why"
if [ -e "$SCRATCH/marked" ]; then not_ok "the first step did not run"; else ok "the first step did not run"; fi
# (--timeout: the 0.3 s default above is for the plan checks; two processes
# may take longer than that on a busy machine)
expect_exit 0 "with the variable given it runs" -- $R run badvar --attr target=x --timeout 30
if [ -e "$SCRATCH/marked" ]; then ok "and its steps ran"; else not_ok "and its steps ran"; fi
expect_exit 2 "run --dry-run shows the same problem" -- $R run badvar --dry-run
expect_exit 0 "run --dry-run prints the plan and runs nothing" -- $R run backup --dry-run --attr db=a
expect_match "$out" '^pattern backup \(sequential\)' "the plan"
n=$($R runs --json | grep -o '"pattern":"backup"' | wc -l)
expect_match "$n" '^0$' "nothing was recorded"

# ---- graph ----
expect_exit 0 "graph of a meta pattern as text" -- $R graph migrate
expect_match "$out" '^pattern migrate \(meta\)$' "the root"
expect_match "$out" '^(\|-|├─) 1\. phase prepare \(sequential\)$' "phases in order"
expect_exit 0 "graph in the C locale" -- env LC_ALL=C $R graph migrate
expect_match "$out" '^`- 2\. phase roll \(parallel\)$' "draws with ASCII"
expect_match "$out" 'pattern deploy \(parallel\)$' "sub-patterns under their phase"
expect_match "$out" 'step check \(exec\) after api, web$' "dependencies"
if command -v dot >/dev/null 2>&1; then
    for p in backup deploy migrate; do
        $R graph "$p" --format dot >"$SCRATCH/$p.dot"
        if dot -Tsvg "$SCRATCH/$p.dot" -o "$SCRATCH/$p.svg" 2>"$SCRATCH/dot.err" && [ -s "$SCRATCH/$p.svg" ]; then
            ok "dot -Tsvg parses the graph of $p"
        else
            not_ok "dot -Tsvg parses the graph of $p"
            sed 's/^/#   /' "$SCRATCH/dot.err"
        fi
    done
else
    echo "# graphviz's dot is not installed: dot output checked by form only"
fi
$R graph deploy --format dot >"$SCRATCH/g.dot"
expect_match "$(cat "$SCRATCH/g.dot")" '^digraph ndf \{$' "dot output is a digraph"
expect_match "$(grep -c -- '->' "$SCRATCH/g.dot")" '^2$' "with an edge per dependency"
expect_exit 2 "graph --format with a bad value" -- $R graph deploy --format png
expect_exit 3 "graph of something unknown exits 3" -- $R graph no-such-thing
expect_match "$err" "^ndf: graph: no pattern named 'no-such-thing' and no execution with id 'no-such-thing'$" "and says so"

# ---- the reason of a failure ----
expect_exit 1 "a failing step fails the run" -- $R run backup --attr db=a
expect_match "$err" '^step rotate: FAILED .*exited with status 2' "the FAILED line"
expect_match "$err" '^    \| keep must be a number$' "is followed by the tail of the step's stderr"
expect_match "$err" '^    \| \.\.\. [0-9]+ earlier lines: ndf logs [^ ]+ rotate shows all$' \
    "bounded, saying how to see the rest"
id=$($R runs --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')
expect_exit 0 "status of the failed execution" -- $R status "$id"
expect_match "$out" '^    \| keep must be a number$' "shows the reason under the FAILED step"
expect_exit 0 "status -v" -- $R -v status "$id"
expect_match "$out" '^    \| noise 1$' "shows all of the output"

# ---- timeouts: the default is only a default; max_timeout is the cap ----
expect_exit 0 "a pattern whose own timeout is longer than default_timeout runs past the default" -- \
    $R run slow
expect_match "$err" 'step nap: COMPLETED' "and completes"
expect_exit 5 "--timeout below its run time still cuts it" -- $R run slow --timeout 0.2
cat "$CONF" >"$SCRATCH/cap.conf"
sed -i 's/kill_grace = 0.2;/kill_grace = 0.2; max_timeout = 0.3;/' "$SCRATCH/cap.conf"
expect_exit 5 "executor.max_timeout caps a pattern's own timeout" -- $NDF -c "$SCRATCH/cap.conf" run slow
expect_exit 0 "plan says when max_timeout applies" -- $NDF -c "$SCRATCH/cap.conf" plan slow
expect_match "$out" '^  deadline: 0.3 s \(the pattern.s timeout\); capped by executor.max_timeout \(0.3 s\)$' \
    "with the cap"
# the sequence's own timeout_seconds is capped too, and the error names the
# deadline in force (0.3 s), not the uncapped 4 s
sed -i '/^patterns = (/a\
  { name = "capseq"; type = "sequential"; params = { timeout_seconds = 4.0; steps = ( { name = "s"; step = "exec"; params = { argv = [ "sleep", "3" ]; }; } ); }; },' "$SCRATCH/cap.conf"
expect_exit 5 "max_timeout caps a sequence's timeout_seconds" -- $NDF -c "$SCRATCH/cap.conf" run capseq
# The sequence names the time its deadline had left when it began: the cap,
# or a hair under it on a loaded machine.
expect_match "$err" "sequence timed out after 0\.[0-9]+s in step 's'" "the error names the capped deadline"
if printf '%s\n' "$err" | grep -q "after 4s"; then not_ok "not the uncapped one"; else ok "not the uncapped one"; fi
id=$($NDF -c "$SCRATCH/cap.conf" runs capseq --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')
expect_exit 0 "graph of the capped run" -- $NDF -c "$SCRATCH/cap.conf" graph "$id"
expect_match "$out" "after 0\.[0-9]+s" "graph names the capped deadline"
if printf '%s\n' "$out" | grep -q "after 4s"; then not_ok "graph: not the uncapped one"; else ok "graph: not the uncapped one"; fi

# ---- terminals: cursor movement and colour only where they work ----
if command -v script >/dev/null 2>&1; then
    esc=$(printf '\033')
    TERM=xterm script -qc "$R run slow" /dev/null >"$SCRATCH/tty.out" 2>&1
    if grep -q "$esc\\[" "$SCRATCH/tty.out"; then ok "a terminal gets the live redraw"; else not_ok "a terminal gets the live redraw"; fi
    TERM=dumb script -qc "$R run slow" /dev/null >"$SCRATCH/tty.out" 2>&1
    if grep -q "$esc" "$SCRATCH/tty.out"; then not_ok "TERM=dumb gets no escape sequence"; else ok "TERM=dumb gets no escape sequence"; fi
    expect_match "$(cat "$SCRATCH/tty.out")" '^step nap: COMPLETED' "but the plain line per change"
    id=$($R runs slow --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')
    TERM=xterm script -qc "$R graph $id" /dev/null >"$SCRATCH/tty.out" 2>&1
    if grep -q "$esc\\[32mCOMPLETED" "$SCRATCH/tty.out"; then ok "graph colours states on a terminal"; else not_ok "graph colours states on a terminal"; fi
    NO_COLOR=1 TERM=xterm script -qc "$R graph $id" /dev/null >"$SCRATCH/tty.out" 2>&1
    if grep -q "$esc" "$SCRATCH/tty.out"; then not_ok "NO_COLOR turns colours off"; else ok "NO_COLOR turns colours off"; fi
    TERM=dumb script -qc "$R graph $id" /dev/null >"$SCRATCH/tty.out" 2>&1
    if grep -q "$esc" "$SCRATCH/tty.out"; then not_ok "TERM=dumb turns colours off"; else ok "TERM=dumb turns colours off"; fi
else
    echo "# script(1) is not installed: terminal output not checked"
fi
$R graph "$($R runs slow --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p')" >"$SCRATCH/pipe.out"
if grep -q "$(printf '\033')" "$SCRATCH/pipe.out"; then not_ok "no colour into a pipe"; else ok "no colour into a pipe"; fi

# ---- global options after the command ----
expect_exit 0 "-q after the command" -- $NDF list -q -c "$CONF"
expect_match "$out" '^NAME ' "and -c after it too"
expect_exit 1 "-q after the command quiets the run" -- $R run backup --attr db=a -q
expect_match "$err" '^$' "nothing on stderr"
expect_exit 2 "-c without a FILE after the command" -- $NDF list -c
expect_match "$err" "^ndf: list: option '-c' requires a FILE$" "says so in the command's error style"
expect_exit 3 "after '--' it is an operand again" -- $R plan -- -q
expect_match "$err" "no pattern named '-q'" "and not an option"

# ---- logs: execution and pattern on every line; journald priorities ----
expect_exit 1 "run -v logs the start and end of the execution" -- $R -v run backup --attr db=a
expect_match "$err" '^ndf: run: execution [^ ]+: pattern backup: started \(deadline 15s, the pattern.s timeout\)$' \
    "the start, with the deadline and its source"
expect_match "$err" '^ndf: run: execution [^ ]+: pattern backup: execution failed in [0-9.]+s: step .rotate.' \
    "the end, with the status, the duration and the reason"
expect_match "$err" '^ndf: run: warning: execution [^ ]+: pattern backup: rotate: attempt 1 of 3 failed' \
    "a step's warning names the execution and the pattern"
: >"$SCRATCH/journal"
js=$(stat -c '%d:%i' "$SCRATCH/journal")
JOURNAL_STREAM=$js $R -v run backup --attr db=a 2>"$SCRATCH/journal"
expect_match "$(cat "$SCRATCH/journal")" '^<4>ndf: run: warning: execution [^ ]+: pattern backup: rotate: attempt 1' \
    "on the journal (JOURNAL_STREAM names stderr), warnings carry <4>"
expect_match "$(cat "$SCRATCH/journal")" '^<6>ndf: run: execution [^ ]+: pattern backup: started' "information <6>"
JOURNAL_STREAM=1:1 $R -v run backup --attr db=a 2>"$SCRATCH/journal"
expect_match "$(cat "$SCRATCH/journal")" '^ndf: run: warning: execution' "JOURNAL_STREAM naming another stream: no prefix"

# ---- --json on the reporting commands ----
expect_exit 0 "check-config --json" -- $R check-config --json
expect_match "$out" '^\{"ok":true,"file":"[^"]+","patterns":6,"plugins":[0-9]+,"errors":\[\],"warnings":\[\]\}$' \
    "one object"
printf 'executor: { threads = 0; frobnicate = 1; };\n' >"$SCRATCH/bad.conf"
expect_exit 2 "check-config --json of a bad file exits 2" -- $NDF -c "$SCRATCH/bad.conf" check-config --json
expect_match "$out" '"ok":false' "says it is not ok"
expect_match "$out" "\"errors\":\\[\"$SCRATCH/bad.conf:1: [^\"]*threads" "lists the errors with file:line"
expect_match "$out" "\"warnings\":\\[\"$SCRATCH/bad.conf:1: [^\"]*frobnicate" "and the warnings"
expect_match "$err" '^$' "and prints nothing on stderr"
expect_exit 0 "cleanup --json" -- $R cleanup --json
expect_match "$out" '^\{"dry_run":false,"executions_removed":[0-9]+,"pages_freed":[0-9]+,"patterns_removed":\[\]\}$' "one object"
expect_exit 0 "cleanup --dry-run --json" -- $R cleanup --dry-run --json
expect_match "$out" '^\{"dry_run":true,"executions_removed":null,"pages_freed":null,"patterns_removed":\[\]\}$' "counts null"
expect_exit 0 "reset-stats --json" -- $R reset-stats backup --json
expect_match "$out" '^\{"pattern":"backup","reset":true,"defined":true\}$' "one object"

# ---- resource waits say what they see ----
cat >"$SCRATCH/res.conf" <<RES
executor: { threads = 2; kill_grace = 0.2; };
storage: { path = "$SCRATCH/state"; };
patterns = (
  { name = "one"; type = "sequential"; params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "gated"; type = "meta"; timeout = 1.5;
    params = { phases = ( { name = "p"; patterns = [ "one" ];
                            resource_allocation = { memory = 0.0; }; } ); }; }
);
RES
# ndf's own resident memory is never 0%: the wait cannot end
# Once started, the exit code is the execution's outcome (the status
# contract, ndf-plugin(7)): a failed run, whatever the type returned.
expect_exit 1 "a resource wait that reaches the deadline fails the run (exit 1)" -- $NDF -c "$SCRATCH/res.conf" run gated
expect_match "$err" "execution [^ ]+: pattern gated: p waits for resources \(1s so far\): ndf's memory [0-9.]+% of the machine \(waits for <= 0%\)" \
    "while it waits, the reading and the threshold are logged with the execution and pattern"
expect_match "$err" "pattern gated: p: resources not available after 1\.[0-9]s: ndf's memory [0-9.]+% of the machine \(waits for <= 0%\) \(resources.scope = ndf\)" \
    "at the deadline, the last reading, the threshold and the scope"
sed -i 's/^executor:/resources: { scope = "system"; };\nexecutor:/' "$SCRATCH/res.conf"
expect_exit 0 "resources.scope is read" -- $NDF -c "$SCRATCH/res.conf" config --json
expect_match "$out" '"resources":\{"scope":"system"\}' "and shown by ndf config"

finish
