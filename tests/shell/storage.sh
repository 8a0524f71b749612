#!/bin/sh
# Storage and analytics from the command line: export in three formats,
# analytics, a corrupt file falling back to its backup, reset-stats,
# cleanup, monitor, and learning that continues across runs.
. "$top_srcdir/tests/shell/lib.sh"

STATE=$SCRATCH/state
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<EOF
storage: { path = "$STATE"; backups = 2; compression = true; level = 6; history_limit = 100; };
confidence: { threshold = 0.75; min_samples = 5; };
patterns = (
    { name = "deploy"; type = "sequential"; domains = [ "web" ];
      params = { steps = ( { name = "a"; step = "noop"; }, { name = "b"; step = "noop"; } ); }; }
);
EOF
ndf() { "$NDF" -c "$CONF" "$@"; }

have_python=0
command -v python3 >/dev/null 2>&1 && python3 -c 'import json, csv' 2>/dev/null && have_python=1

# A stored record written by hand through gzip(1): the format is plain gzip'd JSON.
mkdir -p "$STATE"
entry() { # time ok domain ms confidence
    printf '{"time":%s,"duration":%s,"success":%s,"outcome":"%s","domain":"%s","confidence":%s,' \
        "$1" "$(echo "$4" | awk '{print $1/1000}')" "$2" \
        "$([ "$2" = true ] && echo succeeded || echo failed)" "$3" "$5"
    printf '"timeout":60,"cpu_time":0.01,"peak_rss_kb":2048,"steps":[{"name":"a","outcome":"succeeded","duration":0.01},'
    printf '{"name":"b","outcome":"%s","duration":0.02}]}' "$([ "$2" = true ] && echo succeeded || echo failed)"
}
now=$(date +%s)
{
    printf '{"schema":1,"name":"deploy","saved":%s,"learning":{"executions":6,"successes":4,' "$now"
    printf '"score":0.6,"alpha":5,"beta":3,"converged":false,"last_used":%s,"created":%s,' "$now" "$now"
    printf '"domains":[{"domain":"web","executions":6,"successes":4}]},"history":['
    entry $((now - 500)) true web 10 0.55; printf ,
    entry $((now - 400)) false web 20 0.5; printf ,
    entry $((now - 300)) true web 30 0.55; printf ,
    entry $((now - 200)) true 'we,b \"x\"' 40 0.6; printf ,
    entry $((now - 100)) false web 50 0.55; printf ,
    entry $((now - 50)) true web 60 0.6
    printf ']}'
} | gzip -6 >"$STATE/deploy.json.gz"

expect_exit 0 "export json" -- ndf export deploy
expect_match "$out" '"schema":[[:space:]]*1,' "export json holds the schema version"
if [ $have_python = 1 ]; then
    printf '%s\n' "$out" >"$SCRATCH/e.json"
    expect_exit 0 "export json parses" -- python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "deploy" and d["learning"]["executions"] == 6, d
assert len(d["history"]) == 6 and d["history"][3]["domain"] == "we,b \"x\""
' "$SCRATCH/e.json"
fi

expect_exit 0 "export csv to a file" -- ndf export deploy --format csv -o "$SCRATCH/d.csv"
expect_match "$(head -1 "$SCRATCH/d.csv")" '^pattern,time,time_utc,duration_ms,success,outcome,domain' "csv header"
expect_match "$(wc -l <"$SCRATCH/d.csv")" '^ *7$' "csv has one row per execution"
if [ $have_python = 1 ]; then
    expect_exit 0 "csv read back by python's csv module" -- python3 -c '
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert len(rows) == 6, rows
assert rows[3]["domain"] == "we,b \"x\"", rows[3]
assert rows[1]["success"] == "false" and rows[1]["outcome"] == "failed"
assert float(rows[5]["duration_ms"]) == 60.0, rows[5]
assert rows[0]["steps"] == "a=succeeded:10;b=succeeded:20", rows[0]["steps"]
' "$SCRATCH/d.csv"
fi
expect_exit 0 "export yaml" -- ndf export deploy --format yaml
expect_match "$out" '^schema: 1$' "yaml mapping"
expect_match "$out" 'domain: "we,b \\"x\\""' "yaml strings are quoted"
if [ $have_python = 1 ] && python3 -c 'import yaml' 2>/dev/null; then
    ndf export deploy --format yaml >"$SCRATCH/d.yaml"
    expect_exit 0 "yaml read back by PyYAML" -- python3 -c '
import yaml, sys
d = yaml.safe_load(open(sys.argv[1]))
assert d["learning"]["executions"] == 6 and d["history"][3]["domain"] == "we,b \"x\""
' "$SCRATCH/d.yaml"
fi
expect_exit 3 "export of an unknown pattern" -- ndf export nosuch
expect_match "$err" "'nosuch' has no stored state" "the missing pattern is named"
expect_exit 2 "export refuses a path" -- ndf export ../escape
expect_match "$err" "not a valid pattern name" "bad name is explained"
expect_exit 2 "export refuses an unknown format" -- ndf export deploy --format xml
expect_exit 2 "export needs a pattern" -- ndf export

expect_exit 0 "analytics" -- ndf analytics deploy
expect_match "$out" '^Executions: +6 \(4 succeeded' "analytics counts"
expect_match "$out" 'confidence +[^ ]+ +0\.55 -> 0\.60' "analytics confidence chart"
expect_match "$out" "^  - Only 6|^Recommendations:" "analytics recommendations"
expect_match "$out" "Step 'b' fails most often: 2 of 6" "the failing step is named"
expect_exit 0 "analytics --json" -- ndf analytics deploy --json --days 3
if [ $have_python = 1 ]; then
    printf '%s\n' "$out" >"$SCRATCH/a.json"
    expect_exit 0 "analytics json parses" -- python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["history_count"] == 6 and len(d["trend"]["success_rate_trend"]) == 3, d
assert d["steps"][1]["name"] == "b" and d["steps"][1]["failures"] == 2
' "$SCRATCH/a.json"
fi
expect_exit 2 "analytics --days 0 is refused" -- ndf analytics deploy --days 0
expect_exit 3 "analytics of an unknown pattern" -- ndf analytics nosuch
# a name storage refuses is unknown too (was exit 2 with the registry's message)
expect_exit 3 "analytics of a traversal name" -- ndf analytics ../../etc/passwd
expect_match "$err" "no pattern named '../../etc/passwd' \\(not defined, nothing stored\\)" \
    "the traversal name is reported as unknown"

# A save makes the hand-written file a backup; then damage the current one.
expect_exit 0 "reset-stats" -- ndf reset-stats deploy
expect_match "$out" "reset the statistics of 'deploy'" "reset-stats says so"
[ -f "$STATE/deploy.json.gz.1" ] && ok "the previous state is a backup" || not_ok "no backup"
expect_exit 0 "reset state exported" -- ndf export deploy
expect_match "$out" '"executions":[[:space:]]*0,' "counts reset"
expect_exit 0 "zcat reads the stored file" -- zcat "$STATE/deploy.json.gz"
expect_match "$out" '"schema":1' "stored file is gzip'd JSON"
expect_exit 3 "reset-stats of an unknown pattern" -- ndf reset-stats nosuch

head -c 40 "$STATE/deploy.json.gz.1" >"$SCRATCH/cut" # keep the good backup intact
cp "$STATE/deploy.json.gz" "$SCRATCH/good"
head -c 30 "$SCRATCH/good" >"$STATE/deploy.json.gz"
expect_exit 0 "a truncated file falls back to the backup" -- ndf export deploy
expect_match "$err" "deploy.json.gz: truncated gzip data" "the warning names the file and reason"
expect_match "$err" "using backup deploy.json.gz.1" "the warning names the backup"
expect_match "$out" '"executions":[[:space:]]*6,' "the backup's data is used"
ls "$STATE" | grep -q '^deploy.json.gz.corrupt-' && ok "the corrupt file is kept aside" ||
    not_ok "the corrupt file is gone"

# cleanup: a stored pattern that is no longer defined
cp "$STATE/deploy.json.gz.1" "$SCRATCH/x"
printf '{"schema":1,"name":"gone","saved":1000,"learning":{"executions":1,"successes":1,"score":0.5}}' |
    gzip >"$STATE/gone.json.gz"
expect_exit 0 "cleanup --dry-run" -- ndf cleanup --dry-run
expect_match "$out" "would remove the stored state of 'gone'" "dry run names it"
[ -f "$STATE/gone.json.gz" ] && ok "dry run removes nothing" || not_ok "dry run removed"
expect_exit 0 "cleanup" -- ndf cleanup --max-age-hours 1
expect_match "$out" "removed the stored state of 'gone'" "cleanup removes undefined patterns"
[ -f "$STATE/deploy.json.gz" ] && ok "defined patterns stay" || not_ok "deploy was removed"
[ ! -f "$STATE/gone.json.gz" ] && ok "gone is gone" || not_ok "gone stayed"
expect_exit 2 "cleanup rejects a bad age" -- ndf cleanup --max-age-hours -3

expect_exit 0 "monitor" -- ndf monitor
expect_match "$out" '^cpu +[0-9.]+%' "monitor prints cpu"
expect_exit 0 "monitor --json" -- ndf monitor --json
expect_match "$out" '^\{"cpu":[0-9.e-]+,"memory":[0-9.e-]+,"disk_io":[0-9.e-]+' "monitor json"

# Learning persists: two runs, the counts continue (once `ndf run` exists).
if "$NDF" run --help >/dev/null 2>&1; then
    rm -f "$STATE"/deploy.json.gz*
    expect_exit 0 "first run" -- ndf run deploy --force --domain web
    expect_exit 0 "second run" -- ndf run deploy --force --domain web
    expect_exit 0 "export after two runs" -- ndf export deploy
    expect_match "$out" '"executions":[[:space:]]*2,' "learning continued across runs"
    expect_match "$out" '"outcome":[[:space:]]*"succeeded"' "history recorded"
fi
finish
