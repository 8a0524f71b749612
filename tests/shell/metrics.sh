#!/bin/sh
# Metrics and the operator's diagnostics: `ndf metrics` and `ndf ctl
# metrics` checked by promtool and by their figures, the textfile
# collector's file written atomically and said down when the server is;
# the plan's template check for batch lines and for `ndf ctl run` (refused
# on the server, exit 2, nothing run); one error style across commands,
# with the journal's priorities on the runtime's reports too; and export
# --json.  promtool (Debian's prometheus package) is needed for its checks:
# without it they are skipped, or fail when NDF_REQUIRE_PROMTOOL=1.
. "$top_srcdir/tests/shell/lib.sh"
cp "$NDF" "$SCRATCH/ndf-under-test" && NDF=$SCRATCH/ndf-under-test
RUN=$SCRATCH/run
mkdir -m 700 "$RUN"
export NDF_RUNTIME_DIR=$RUN
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<CONF
confidence: { threshold = 0.0; };
executor: { threads = 2; };
storage: { path = "$SCRATCH/state"; };
patterns = (
  { name = "fine"; type = "sequential";
    params = { steps = ( { name = "a"; step = "exec"; params = { argv = [ "true" ]; }; } ); }; },
  { name = "broken"; type = "sequential";
    params = { steps = ( { name = "a"; step = "exec"; params = { argv = [ "false" ]; }; } ); }; },
  { name = "badvar"; type = "sequential";
    params = { steps = (
      { name = "mark"; step = "exec"; params = { argv = [ "touch", "$SCRATCH/marked" ]; }; },
      { name = "use"; step = "exec"; params = { argv = [ "echo", "\${attr.target}" ]; }; } ); }; }
);
CONF
R="$NDF -c $CONF"

# promtool_check FILE DESCRIPTION
promtool_check() {
    if ! command -v promtool >/dev/null 2>&1; then
        if [ "${NDF_REQUIRE_PROMTOOL:-0}" = 1 ]; then
            not_ok "$2 (promtool is not installed and NDF_REQUIRE_PROMTOOL=1)"
        else
            echo "# SKIP $2: promtool is not installed (Debian: prometheus)"
        fi
        return
    fi
    if promtool check metrics <"$1" >"$SCRATCH/promtool.out" 2>&1; then
        ok "$2"
    else
        not_ok "$2"
        sed 's/^/#   promtool: /' "$SCRATCH/promtool.out" | head -20
    fi
}

# ---- ndf metrics from the store ----
$R run fine >/dev/null 2>&1
$R run fine >/dev/null 2>&1
$R run broken >/dev/null 2>&1
expect_exit 0 "metrics exits 0" -- $R metrics
printf '%s\n' "$out" >"$SCRATCH/one.prom"
promtool_check "$SCRATCH/one.prom" "promtool check metrics accepts ndf metrics"
expect_match "$out" '^ndf_pattern_executions_total\{pattern="fine"\} 2$' "executions counted per pattern"
expect_match "$out" '^ndf_pattern_successes_total\{pattern="broken"\} 0$' "successes per pattern"
expect_match "$out" '^ndf_pattern_confidence\{pattern="fine"\} 0\.75$' "the confidence per pattern"
expect_match "$out" '^ndf_executions\{pattern="broken",status="failed"\} 1$' "kept executions by status"
expect_match "$out" '^ndf_executions\{pattern="fine",status="failed"\} 0$' \
    "every status of a pattern is present, 0 included"
expect_match "$out" '^ndf_execution_duration_seconds_bucket\{pattern="fine",le="\+Inf"\} 2$' \
    "the duration histogram's +Inf bucket holds every finished execution"
expect_match "$out" '^ndf_execution_duration_seconds_count\{pattern="fine"\} 2$' "and its count"
expect_match "$out" '^ndf_execution_duration_seconds_bucket\{pattern="fine",le="0\.05"\} ' \
    "bucket bounds written as short as they read back"
expect_match "$out" '^ndf_store_up 1$' "the store is up"
expect_match "$(printf '%s\n' "$out" | grep -c '^ndf_workers')" '^0$' \
    "no live gauges without a server"
expect_exit 0 "metrics with a window no execution started in" -- $R metrics --window 0.000001
expect_match "$out" '^ndf_executions\{pattern="fine",status="succeeded"\} 0$' \
    "still has each pattern's series, at 0"
expect_match "$out" '^ndf_execution_duration_seconds_count\{pattern="broken"\} 0$' "the histogram too"
expect_match "$out" '^ndf_pattern_executions_total\{pattern="fine"\} 2$' "the counters are not windowed"

# ---- the textfile collector's file ----
mkdir "$SCRATCH/tf"
expect_exit 0 "metrics --textfile writes the file" -- $R metrics --textfile "$SCRATCH/tf/ndf.prom"
expect_match "$out" '^$' "and nothing on stdout"
expect_match "$(stat -c %a "$SCRATCH/tf/ndf.prom")" '^644$' "readable by node_exporter (0644)"
expect_match "$(ls -A "$SCRATCH/tf")" '^ndf\.prom$' "no temporary file is left beside it"
promtool_check "$SCRATCH/tf/ndf.prom" "promtool check metrics accepts the textfile"
expect_exit 2 "a textfile not named *.prom is refused" -- $R metrics --textfile "$SCRATCH/tf/ndf.txt"
expect_match "$err" "^ndf: metrics: --textfile .*ndf\.txt'?: the name must end in \.prom" "saying why"
expect_exit 2 "--interval without --textfile is refused" -- $R metrics --interval 5
expect_exit 2 "--interval 0 is refused" -- $R metrics --textfile "$SCRATCH/tf/ndf.prom" --interval 0
expect_exit 2 "a bad --window is refused" -- $R metrics --window soon
expect_exit 2 "an operand is refused" -- $R metrics extra
expect_exit 8 "a textfile in a missing directory exits 8" -- $R metrics --textfile "$SCRATCH/none/x.prom"
expect_match "$err" "^ndf: metrics: .*none" "naming it"
# --interval rewrites the file until SIGTERM
$R metrics --textfile "$SCRATCH/tf/loop.prom" --interval 0.2 2>"$SCRATCH/loop.err" &
LOOP=$!
for i in $(seq 1 100); do [ -s "$SCRATCH/tf/loop.prom" ] && break; sleep 0.05; done
$R run fine >/dev/null 2>&1
for i in $(seq 1 100); do
    grep -q '^ndf_pattern_executions_total{pattern="fine"} 3$' "$SCRATCH/tf/loop.prom" && break
    sleep 0.05
done
grep -q '^ndf_pattern_executions_total{pattern="fine"} 3$' "$SCRATCH/tf/loop.prom" &&
    ok "--interval writes the file again with the new figures" ||
    not_ok "--interval writes the file again with the new figures"
kill -TERM "$LOOP"
wait "$LOOP"
rc=$?
[ "$rc" -eq 143 ] && ok "SIGTERM ends the loop (exit 128+15)" || not_ok "SIGTERM ends the loop: exit $rc"

# A store that cannot be opened: the exposition still says so, exit 8.
printf 'storage: { path = "%s/afile"; };\n' "$SCRATCH" >"$SCRATCH/nostore.conf"
: >"$SCRATCH/afile"
expect_exit 8 "metrics without a store exits 8" -- "$NDF" -c "$SCRATCH/nostore.conf" metrics
expect_match "$out" '^ndf_store_up 0$' "with ndf_store_up 0 in the exposition"
printf '%s\n' "$out" >"$SCRATCH/down.prom"
promtool_check "$SCRATCH/down.prom" "promtool check metrics accepts the store-down exposition"

# ---- batch: each line checked as ndf run checks it ----
rm -f "$SCRATCH/marked"
printf '%s\n' '{"pattern":"badvar"}' '{"pattern":"fine"}' '{"pattern":"badvar","context":{"attributes":{"target":"x"}}}' \
    >"$SCRATCH/batch.jsonl"
expect_exit 1 "batch with an unresolved variable on one line exits 1" -- $R batch --sequential "$SCRATCH/batch.jsonl"
expect_match "$(printf '%s\n' "$out" | sed -n 1p)" \
    "^\\{\"line\":1,\"pattern\":\"badvar\",\"success\":false,\"status\":\"validation failed\",\"error\":\"pattern 'badvar' not started: .*unknown variable" \
    "the line is refused with the reason"
expect_match "$(printf '%s\n' "$out" | sed -n 2p)" '"line":2,"pattern":"fine","success":true' "the others run"
expect_match "$(printf '%s\n' "$out" | sed -n 3p)" '"line":3,"pattern":"badvar","success":true' \
    "and the same pattern runs where its context resolves it"

# ---- the server ----
$R serve 2>"$SCRATCH/serve.log" &
SERVER=$!
for i in $(seq 1 100); do
    $R ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
rm -f "$SCRATCH/marked"
expect_exit 2 "ctl run with an unresolved variable exits 2" -- $R ctl run badvar
expect_match "$err" "^ndf: ctl: run: pattern 'badvar' not started: .*unknown variable .*\\(see 'ndf plan badvar'\\)" \
    "refused by the server with the reason"
[ -e "$SCRATCH/marked" ] && not_ok "ctl run: no step ran" || ok "ctl run: no step ran"
expect_exit 0 "ctl run with the variable given runs" -- $R ctl run badvar --attr target=x
expect_exit 0 "ctl metrics" -- $R ctl metrics
printf '%s\n' "$out" >"$SCRATCH/live.prom"
promtool_check "$SCRATCH/live.prom" "promtool check metrics accepts ndf ctl metrics"
expect_match "$out" '^ndf_server_up 1$' "the server is up"
expect_match "$out" '^ndf_workers 2$' "the executor's workers"
expect_match "$out" '^ndf_executions_running 0$' "executions running now"
expect_match "$out" '^ndf_reloads_total 0$' "reloads"
expect_match "$out" '^ndf_reloads_failed_total 0$' "and refused reloads"
expect_match "$out" '^ndf_pattern_executions_total\{pattern="badvar"\} 2$' "and the store's figures"
$R ctl reload >/dev/null 2>&1
expect_exit 0 "ctl metrics after a reload" -- $R ctl metrics
expect_match "$out" '^ndf_reloads_total 1$' "counts it"
printf '%s\n' '{"cmd":"metrics","args":["--textfile","/tmp/x.prom"]}' >"$SCRATCH/req"
expect_exit 0 "a raw metrics request naming a file" -- $R ctl send <"$SCRATCH/req"
expect_match "$out" '"ok":false,"error":"bad request: the server writes no file' "is refused by the server"
$R ctl metrics --textfile "$SCRATCH/tf/live.prom" --interval 0.2 2>"$SCRATCH/ctlloop.err" &
CLOOP=$!
for i in $(seq 1 100); do grep -q '^ndf_server_up 1$' "$SCRATCH/tf/live.prom" 2>/dev/null && break; sleep 0.05; done
grep -q '^ndf_server_up 1$' "$SCRATCH/tf/live.prom" && ok "ctl metrics --textfile writes the live view" ||
    not_ok "ctl metrics --textfile writes the live view"
kill -TERM "$SERVER"
wait "$SERVER"
for i in $(seq 1 100); do grep -q '^ndf_server_up 0$' "$SCRATCH/tf/live.prom" && break; sleep 0.05; done
grep -q '^ndf_server_up 0$' "$SCRATCH/tf/live.prom" && ok "and says when the server is gone" ||
    not_ok "and says when the server is gone"
promtool_check "$SCRATCH/tf/live.prom" "promtool check metrics accepts the server-down textfile"
kill -TERM "$CLOOP"
wait "$CLOOP"
expect_exit 9 "ctl metrics with no server exits 9" -- $R ctl metrics
expect_match "$out" '^$' "and prints no exposition"

# serve --metrics-textfile: the server writes its own, and says when it stops
expect_exit 2 "serve --metrics-textfile not named *.prom is refused" -- \
    $R serve --metrics-textfile "$SCRATCH/tf/srv.txt"
expect_match "$err" "^ndf: serve: --metrics-textfile .*srv\.txt'?: the name must end in \.prom" "saying why"
expect_exit 2 "serve --metrics-interval 0 is refused" -- \
    $R serve --metrics-textfile "$SCRATCH/tf/srv.prom" --metrics-interval 0
$R serve --metrics-textfile "$SCRATCH/tf/srv.prom" --metrics-interval 0.2 2>"$SCRATCH/serve2.log" &
SERVER=$!
for i in $(seq 1 200); do grep -q '^ndf_server_up 1$' "$SCRATCH/tf/srv.prom" 2>/dev/null && break; sleep 0.05; done
grep -q '^ndf_server_up 1$' "$SCRATCH/tf/srv.prom" && ok "serve --metrics-textfile writes the live view" ||
    not_ok "serve --metrics-textfile writes the live view"
grep -q '^ndf_workers 2$' "$SCRATCH/tf/srv.prom" && ok "with the executor's gauges" ||
    not_ok "with the executor's gauges"
promtool_check "$SCRATCH/tf/srv.prom" "promtool check metrics accepts the server's textfile"
kill -TERM "$SERVER"
wait "$SERVER"
rc=$?
[ "$rc" -eq 0 ] && ok "the server still stops with exit 0" || not_ok "the server stops with exit $rc"
expect_match "$(cat "$SCRATCH/tf/srv.prom")" '^ndf_server_up 0$' "and leaves ndf_server_up 0 behind"
expect_match "$(grep -c 'no ndf server' "$SCRATCH/serve2.log")" '^0$' \
    "without complaining of its own socket coming and going"

# ---- --help answers and does nothing else ----
# A store that cannot be opened: a command that went on after its help
# would fail (exit 8) or say so.
touch "$SCRATCH/notadir"
sed "s|path = \"$SCRATCH/state\"|path = \"$SCRATCH/notadir/state\"|" "$CONF" >"$SCRATCH/nostore.conf"
for args in "metrics" "ctl metrics" "runs" "status" "logs" "analytics" "cleanup" "backup" \
    "reset-stats" "export" "run" "batch"; do
    # shellcheck disable=SC2086
    out=$("$NDF" -c "$SCRATCH/nostore.conf" $args --help 2>"$SCRATCH/help.err")
    rc=$?
    [ "$rc" -eq 0 ] && [ ! -s "$SCRATCH/help.err" ] && case $out in Usage*) true ;; *) false ;; esac &&
        ok "ndf $args --help: the usage, exit 0, nothing else" ||
        not_ok "ndf $args --help: exit $rc, stderr '$(head -c 200 "$SCRATCH/help.err")'"
done

# ---- one error style ----
# A sample of refusals from several commands and layers: each line is
# "ndf: COMMAND: message".
for args in "list -Z" "show" "run" "batch" "export fine --format xml" "runs --limit x" \
    "status a b" "logs" "plan" "graph fine --format svg" "cleanup --max-age-hours x" \
    "analytics fine --days 0" "metrics --window x" "ctl run" "ctl nope" "inspect" \
    "delegate x" "redrive" "serve extra" "test-step" "new-plugin" "config x" "backup x" \
    "restore" "similar a b"; do
    cmd=${args%% *}
    # shellcheck disable=SC2086
    $R $args >/dev/null 2>"$SCRATCH/style.err"
    first=$(grep -v '^Usage\|^ *$\|^  \|^[A-Z][a-z]*:$' "$SCRATCH/style.err" | head -1)
    case $first in
    "ndf: $cmd: "*) ok "ndf $args: '$first'" ;;
    "") ok "ndf $args: the usage only" ;;
    *) not_ok "ndf $args: '$first' is not 'ndf: $cmd: ...'" ;;
    esac
done
expect_exit 2 "an unknown global option" -- "$NDF" --frobnicate
expect_match "$err" "^ndf: unrecognized option '--frobnicate'" "is 'ndf: ...' (no command yet)"
printf 'executor: { threads = "x"; };\n' >"$SCRATCH/bad.conf"
expect_exit 2 "a config error" -- "$NDF" -c "$SCRATCH/bad.conf" list
expect_match "$err" "^ndf: list: $SCRATCH/bad\\.conf:1: " "is 'ndf: COMMAND: FILE:LINE: ...'"
: >"$SCRATCH/journal"
js=$(stat -c '%d:%i' "$SCRATCH/journal")
JOURNAL_STREAM=$js "$NDF" -c "$SCRATCH/bad.conf" list 2>"$SCRATCH/journal"
expect_match "$(cat "$SCRATCH/journal")" "^<3>ndf: list: $SCRATCH/bad\\.conf:1: " \
    "on the journal, the runtime's reports carry <3>"
printf 'executor: { thread = 2; };\n' >"$SCRATCH/warn.conf"
JOURNAL_STREAM=$js "$NDF" -c "$SCRATCH/warn.conf" list 2>"$SCRATCH/journal"
expect_match "$(cat "$SCRATCH/journal")" "^<4>ndf: list: warning: $SCRATCH/warn\\.conf:1: unknown key" \
    "and their warnings <4>"
JOURNAL_STREAM=$js $R run nope 2>"$SCRATCH/journal"
expect_match "$(cat "$SCRATCH/journal")" "^<3>ndf: run: no pattern named 'nope'" "a command's own errors <3>"

# ---- export --json ----
expect_exit 0 "export --json" -- $R export fine --json
expect_match "$out" '"format":[[:space:]]*"ndf-export"' "is the JSON document"
expect_exit 2 "export --json --format csv contradict" -- $R export fine --json --format csv
expect_match "$err" "^ndf: export: --json and --format csv contradict each other$" "and says so"

finish
