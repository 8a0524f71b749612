#!/bin/sh
# What an operator reads when something is wrong: every diagnostic of a
# sample of failing commands, one-shot and through `ndf ctl`, in the one
# style ("ndf: COMMAND: ...", "ndf: ctl: VERB: ..."); one wording for what
# is not there; --fallback naming a primary refused before it started;
# `ndf metrics` creating nothing on a fresh storage path and a signal
# ending its loop quietly; the textfile's name and the interval options
# checked one way; a bad pattern definition not hiding the good ones;
# serve's start-up errors in the command's style; a pattern's log lines
# naming it once.
. "$top_srcdir/tests/shell/lib.sh"
cp "$NDF" "$SCRATCH/ndf-under-test" && NDF=$SCRATCH/ndf-under-test
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
SOCK=$RUN/ndf.sock
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<CONF
confidence: { threshold = 0.5; };
executor: { threads = 2; };
storage: { path = "$SCRATCH/state"; };
server: { socket = "$SOCK"; };
patterns = (
  { name = "fine"; type = "sequential";
    params = { steps = ( { name = "a"; step = "exec"; params = { argv = [ "true" ]; }; } ); }; },
  { name = "broken"; type = "sequential";
    params = { steps = ( { name = "a"; step = "exec"; params = { argv = [ "false" ]; }; } ); }; },
  { name = "badvar"; type = "sequential";
    params = { steps = (
      { name = "mark"; step = "exec"; params = { argv = [ "touch", "$SCRATCH/marked" ]; }; },
      { name = "use"; step = "exec"; params = { argv = [ "echo", "\${attr.target}" ]; }; } ); }; },
  { name = "slow"; type = "sequential";
    params = { steps = ( { name = "s"; step = "exec"; params = { argv = [ "sleep", "60" ]; }; } ); }; }
);
CONF
R="$NDF -c $CONF"

# every_line_styled FILE PREFIX_REGEX DESCRIPTION: each line of FILE up to
# the usage text that may follow a bad option starts with the prefix
every_line_styled() {
    bad=$(awk '/^Usage: /{exit} {print}' "$1" | grep -v -E "^$2" || true)
    if [ -s "$1" ] && [ -z "$bad" ]; then
        ok "$3"
    else
        not_ok "$3"
        [ -s "$1" ] || echo "#   (no diagnostic at all)"
        printf '%s\n' "$bad" | head -5 | sed 's/^/#   /'
    fi
}

# ---- the one-shot commands ----
$R run fine >/dev/null 2>&1
: >"$SCRATCH/all.err"
n=0
for cmd in "show nope" "plan nope" "graph nope" "status 999" "logs 999" "redrive 999" \
    "export nope" "analytics nope" "reset-stats nope" "run nope" "record nope --success" \
    "wait 999 --timeout 0" "run" "list --bogus" "metrics --interval 0" "run fine --timeout x" \
    "metrics --textfile x.txt" "inspect $SCRATCH/none.so" "graph fine --format png" \
    "runs --status nosuch" "logs fine-1 nostep"; do
    # shellcheck disable=SC2086
    $R $cmd >/dev/null 2>"$SCRATCH/one.err"
    n=$((n + 1))
    word=${cmd%% *}
    every_line_styled "$SCRATCH/one.err" "ndf: $word: " "ndf $cmd: 'ndf: $word: ...'"
    cat "$SCRATCH/one.err" >>"$SCRATCH/all.err"
done
every_line_styled "$SCRATCH/all.err" 'ndf: [a-z-]+: ' "all $n samples read 'ndf: COMMAND: '"

expect_exit 3 "show of an unknown pattern exits 3" -- $R show nope
expect_match "$err" "^ndf: show: no pattern named 'nope'$" "show: no pattern named"
expect_exit 3 "plan of an unknown pattern" -- $R plan nope
expect_match "$err" "^ndf: plan: no pattern named 'nope'$" "plan: the same words"
expect_exit 3 "run of an unknown pattern" -- $R run nope
expect_match "$err" "^ndf: run: no pattern named 'nope'$" "run: the same words"
expect_exit 3 "export of a pattern never stored" -- $R export nope
expect_match "$err" "^ndf: export: no pattern named 'nope' in the store" "export: the same words"
expect_exit 3 "status of an unknown execution" -- $R status 999
expect_match "$err" "^ndf: status: no execution with id '999' in " "status: no execution with id"
expect_exit 3 "redrive of an unknown execution" -- $R redrive 999
expect_match "$err" "^ndf: redrive: no execution with id '999'" "redrive: the same words"
expect_exit 3 "graph of neither" -- $R graph nope
expect_match "$err" "^ndf: graph: no pattern named 'nope' and no execution with id 'nope'$" \
    "graph: both, in the same words"

# ---- --fallback: the cause of a primary refused before it started ----
rm -f "$SCRATCH/marked"
expect_exit 0 "run --fallback past a primary the plan check refuses" -- $R run badvar --fallback fine
expect_match "$err" "^ndf: run: pattern 'badvar' not started: .*unknown variable" "the refusal is said"
expect_match "$err" "^ndf: run: falling back to 'fine' \\(cause: validation\\)$" "the cause is validation"
[ -e "$SCRATCH/marked" ] && not_ok "the refused primary ran a step" || ok "the refused primary ran no step"

# ---- ndf ctl: every verb's diagnostics read "ndf: ctl: VERB: " ----
$R serve >"$SCRATCH/serve.log" 2>&1 &
SERVER=$!
for i in $(seq 1 200); do
    $R ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
: >"$SCRATCH/ctl.err"
for cmd in "show nope" "plan nope" "redrive 999" "export nope" "status 999" "run nope" \
    "cancel 999" "rollback 999" "wait 999" "list --bogus" "run" "status 1 2" \
    "metrics --textfile $SCRATCH/nodir/x.prom" "reset-stats nope" "analytics nope" \
    "similar --threshold 2" "ping extra" "record nope --success"; do
    # shellcheck disable=SC2086
    $R ctl $cmd >/dev/null 2>"$SCRATCH/one.err"
    word=${cmd%% *}
    every_line_styled "$SCRATCH/one.err" "ndf: ctl: $word: " "ctl $cmd: 'ndf: ctl: $word: ...'"
    cat "$SCRATCH/one.err" >>"$SCRATCH/ctl.err"
done
every_line_styled "$SCRATCH/ctl.err" 'ndf: ctl: [a-z-]+: ' "every ctl sample reads 'ndf: ctl: VERB: '"
expect_exit 2 "an unknown verb" -- $R ctl frobnicate
expect_match "$err" "^ndf: ctl: unknown verb 'frobnicate'" "is ctl's own error, before any verb"
expect_exit 3 "ctl show of an unknown pattern" -- $R ctl show nope
expect_match "$err" "^ndf: ctl: show: no pattern named 'nope'$" "relayed in ctl's style, same words"
expect_exit 3 "ctl run of an unknown pattern" -- $R ctl run nope
expect_match "$err" "^ndf: ctl: run: no pattern named 'nope'$" "ctl run: the same words"
expect_exit 3 "ctl cancel of an unknown execution" -- $R ctl cancel 999
expect_match "$err" "^ndf: ctl: cancel: no execution with id '999' is running$" "ctl cancel: the same words"
expect_exit 3 "ctl redrive of an unknown execution" -- $R ctl redrive 999
expect_match "$err" "^ndf: ctl: redrive: no execution with id '999'" "ctl redrive: the same words"

rm -f "$SCRATCH/marked"
expect_exit 0 "ctl run --fallback past a primary the plan check refuses" -- \
    $R ctl run badvar --fallback fine
expect_match "$err" "^ndf: ctl: run: pattern 'badvar' not started: .*unknown variable" "the refusal is said"
expect_match "$err" "^ndf: ctl: run: falling back to 'fine' \\(cause: validation\\)$" \
    "the cause is validation, as one-shot"
[ -e "$SCRATCH/marked" ] && not_ok "the server ran a step of the refused primary" ||
    ok "the server ran no step of the refused primary"
expect_exit 2 "ctl run --fallback to a pattern the check refuses" -- $R ctl run broken --fallback badvar
expect_match "$err" "^ndf: ctl: run: falling back to 'badvar' \\(cause: failure\\)$" "the primary failed"
expect_match "$err" "^ndf: ctl: run: pattern 'badvar' not started: " "and why the fallback did not start"
[ -e "$SCRATCH/marked" ] && not_ok "the refused fallback ran a step" || ok "the refused fallback ran no step"

# A second server on the same socket: the command's error, not a log line.
expect_exit 8 "a second serve on a busy socket exits 8" -- $R serve
expect_match "$err" "^ndf: serve: another ndf server already listens on $SOCK$" "in the command's style"
kill -TERM $SERVER
wait $SERVER

# ---- the confidence gate's warning names the pattern once ----
for i in 1 2 3 4 5 6; do $R -q run broken >/dev/null 2>&1; done
expect_exit 1 "broken runs below its threshold (gate warn)" -- $R run broken
expect_match "$err" "^ndf: run: warning: execution [^ ]+: pattern broken: confidence [0-9.]+ is below its threshold" \
    "the gate's warning names the execution and the pattern"
if printf '%s\n' "$err" | grep -q 'pattern broken: broken:'; then
    not_ok "the pattern is named twice"
else
    ok "the pattern is named once"
fi

# ---- a signal to a run is announced in the command's style ----
$R run slow 2>"$SCRATCH/sig.err" &
P=$!
for i in $(seq 1 200); do grep -q '^pattern slow: started' "$SCRATCH/sig.err" && break; sleep 0.05; done
# (SIGTERM: a background job of a non-interactive shell ignores SIGINT)
kill -TERM $P
wait $P
rc=$?
[ "$rc" -eq 143 ] && ok "SIGTERM ends the run with 143" || not_ok "SIGTERM ended the run with $rc"
expect_match "$(cat "$SCRATCH/sig.err")" "^ndf: run: SIGTERM: cancelling \\(rollback runs; send it again to skip rollback\\)$" \
    "and is announced as 'ndf: run: SIGTERM: cancelling ...'"

# ---- ndf metrics on a fresh storage path ----
sed "s|$SCRATCH/state|$SCRATCH/fresh/state|" "$CONF" >"$SCRATCH/fresh.conf"
expect_exit 0 "metrics with no store yet exits 0" -- $NDF -c "$SCRATCH/fresh.conf" metrics
expect_match "$err" "^ndf: metrics: warning: no store yet in $SCRATCH/fresh/state \\(nothing has run\\)" \
    "and says there is no store yet"
expect_match "$out" '^ndf_store_up 1$' "the exposition is complete"
if printf '%s\n' "$out" | grep -q '^ndf_pattern_'; then not_ok "figures of no pattern"; else ok "no pattern figure"; fi
[ -e "$SCRATCH/fresh" ] && not_ok "the report created $(find "$SCRATCH/fresh" | head -3)" ||
    ok "the report created nothing"
expect_exit 0 "metrics -q with no store yet" -- $NDF -c "$SCRATCH/fresh.conf" -q metrics
[ -z "$err" ] && ok "-q hides the warning" || not_ok "-q hides the warning: $err"

# ---- a signal ends a metrics loop quietly ----
$NDF -c "$SCRATCH/fresh.conf" metrics --textfile "$SCRATCH/m.prom" --interval 0.1 \
    2>"$SCRATCH/loop.err" &
LOOP=$!
for i in $(seq 1 100); do [ -s "$SCRATCH/m.prom" ] && break; sleep 0.05; done
$NDF -c "$SCRATCH/fresh.conf" run fine >/dev/null 2>&1
for i in $(seq 1 100); do grep -q '^ndf_pattern_executions_total{pattern="fine"} 1$' "$SCRATCH/m.prom" && break; sleep 0.05; done
expect_match "$(cat "$SCRATCH/m.prom")" '^ndf_pattern_executions_total\{pattern="fine"\} 1$' \
    "the loop opens the store once a run made it"
kill -TERM $LOOP
wait $LOOP
rc=$?
[ "$rc" -eq 143 ] && ok "SIGTERM ends the loop with 143, as documented" || not_ok "the loop ended with $rc"
if grep -q -E 'cancel|rollback' "$SCRATCH/loop.err"; then
    not_ok "a metrics loop talks of cancelling and rollback: $(cat "$SCRATCH/loop.err")"
else
    ok "and says nothing of cancelling or rollback"
fi

# ---- the textfile's name, and every interval option one way ----
for name in .prom "$SCRATCH/.prom" "$SCRATCH/.hidden.prom"; do
    expect_exit 2 "--textfile '$name' is refused" -- $R metrics --textfile "$name"
    expect_match "$err" "^ndf: metrics: --textfile '[^']*': the file needs a name before \\.prom" \
        "saying a name must come before .prom"
done
expect_exit 2 "a name not ending in .prom" -- $R metrics --textfile "$SCRATCH/x.txt"
expect_match "$err" "must end in \\.prom" "says so"
expect_exit 2 "serve checks its textfile the same way" -- $R serve --metrics-textfile .prom
expect_match "$err" "^ndf: serve: --metrics-textfile '.prom': the file needs a name" "in the same words"
# (a huge number, nan, hexadecimal, a leading space or sign: refused too)
for v in 0 -1 x 1e300 nan inf 0x10 " 5" +5; do
    re=$(printf '%s' "$v" | sed 's/+/[+]/')
    expect_exit 2 "metrics --interval '$v'" -- $R metrics --textfile "$SCRATCH/y.prom" --interval "$v"
    expect_match "$err" "^ndf: metrics: --interval $re: expected a number of seconds above 0, at most 1000000000$" \
        "--interval '$v': one message"
    expect_exit 2 "serve --metrics-interval '$v'" -- $R serve --metrics-interval "$v"
    expect_match "$err" "^ndf: serve: --metrics-interval $re: expected a number of seconds above 0, at most 1000000000$" \
        "--metrics-interval '$v': the same message"
    expect_exit 2 "run --timeout '$v'" -- $R run fine --timeout "$v"
    expect_match "$err" "^ndf: run: --timeout $re: expected a number of seconds above 0, at most 1000000000$" \
        "run --timeout '$v': the same message"
    expect_exit 2 "delegate --timeout '$v'" -- $R delegate --timeout "$v"
    expect_match "$err" "^ndf: delegate: --timeout $re: expected a number of seconds above 0, at most 1000000000$" \
        "delegate --timeout '$v': the same message"
done
for v in -1 x 1e300 nan 0x10 " 5" +5; do
    re=$(printf '%s' "$v" | sed 's/+/[+]/')
    expect_exit 2 "wait --timeout '$v'" -- $R wait someid --timeout "$v"
    expect_match "$err" "^ndf: wait: --timeout $re: expected a number of seconds from 0 to 1000000000$" \
        "wait --timeout '$v': says the range"
done

# ---- a bad pattern definition does not hide the others ----
cat >"$SCRATCH/bad.conf" <<CONF
storage: { path = "$SCRATCH/state"; };
patterns = (
  { name = "fine"; type = "sequential";
    params = { steps = ( { name = "a"; step = "exec"; params = { argv = [ "true" ]; }; } ); }; },
  { name = "bad name!"; type = "sequential";
    params = { steps = ( { name = "a"; step = "exec"; params = { argv = [ "true" ]; }; } ); }; }
);
CONF
expect_exit 2 "list with an invalid pattern name exits 2" -- $NDF -c "$SCRATCH/bad.conf" list
expect_match "$out" '^fine +sequential ' "and still lists the valid pattern"
expect_match "$err" "^ndf: list: $SCRATCH/bad.conf:5: pattern: invalid name 'bad name!'" \
    "and names the bad one with file:line"
expect_exit 2 "list --json too" -- $NDF -c "$SCRATCH/bad.conf" list --json
expect_match "$out" '"name":"fine"' "with the valid pattern"
expect_exit 2 "check-config reports the same" -- $NDF -c "$SCRATCH/bad.conf" check-config
expect_match "$err" "^ndf: check-config: $SCRATCH/bad.conf:5: pattern: invalid name 'bad name!'" \
    "with the same words"
expect_exit 2 "run of a valid pattern still refuses a configuration with errors" -- \
    $NDF -c "$SCRATCH/bad.conf" run fine
# a definition that does not build is named as such, not as missing
cat >"$SCRATCH/unbuilt.conf" <<CONF
storage: { path = "$SCRATCH/state"; };
patterns = (
  { name = "fine"; type = "sequential";
    params = { steps = ( { name = "a"; step = "exec"; params = { argv = [ "true" ]; }; } ); }; },
  { name = "unbuilt"; type = "sequential";
    params = { steps = ( { name = "a"; step = "exec"; params = { argvv = [ "true" ]; }; } ); }; }
);
CONF
for cmd in plan show graph; do
    expect_exit 2 "$cmd of a definition that did not build exits 2" -- \
        $NDF -c "$SCRATCH/unbuilt.conf" $cmd unbuilt
    expect_match "$err" "^ndf: $cmd: pattern 'unbuilt' \\($SCRATCH/unbuilt.conf:5\\) did not build: see its errors above$" \
        "$cmd says it did not build, with file:line"
done
expect_exit 3 "a name defined nowhere is still not found" -- $NDF -c "$SCRATCH/unbuilt.conf" plan nope
printf 'storage: { path = "%s"; };\nexecutor: { threads = "x"; };\npatterns = ( { name = "fine"; type = "sequential"; } );\n' \
    "$SCRATCH/state" >"$SCRATCH/bad2.conf"
expect_exit 2 "an error outside the pattern definitions stops list" -- $NDF -c "$SCRATCH/bad2.conf" list
[ -z "$out" ] && ok "before it shows anything" || not_ok "list showed: $out"
finish
