#!/bin/sh
# The store from the command line: the import of a file in the previous
# format, export in three formats, analytics, reset-stats, backup, a corrupt
# database and restore, cleanup, monitor, and learning that continues
# across runs and concurrent processes.
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

# The first command imports the old file into the store (ndf.db) and
# moves it aside: the migration from the previous release's format.
expect_exit 0 "export json" -- ndf export deploy
expect_match "$out" '"format":[[:space:]]*"ndf-export",' "export json names its format"
[ -f "$STATE/ndf.db" ] && ok "the store was created" || not_ok "no ndf.db"
ls "$STATE" | grep -q '\.json' && not_ok "an old file was left in place" ||
    ok "the old files were moved aside"
[ -f "$(echo "$STATE"/legacy-*/deploy.json.gz)" ] && ok "the original is kept in legacy-*" ||
    not_ok "the original is gone"
if [ $have_python = 1 ]; then
    printf '%s\n' "$out" >"$SCRATCH/e.json"
    expect_exit 0 "export json parses" -- python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "deploy" and d["learning"]["executions"] == 6, d
ex = d["executions"]
assert len(ex) == 6 and ex[3]["domain"] == "we,b \"x\"", ex
assert all(e["id"] for e in ex) and ex[1]["status"] == "FAILED"
assert [n["path"] for n in ex[0]["nodes"]] == ["", "a", "b"], ex[0]["nodes"]
' "$SCRATCH/e.json"
fi

expect_exit 0 "export csv to a file" -- ndf export deploy --format csv -o "$SCRATCH/d.csv"
expect_match "$(head -1 "$SCRATCH/d.csv")" '^pattern,id,start,start_utc,duration_ms,status,success,origin,domain' "csv header"
expect_match "$(wc -l <"$SCRATCH/d.csv")" '^ *7$' "csv has one row per execution"
if [ $have_python = 1 ]; then
    expect_exit 0 "csv read back by python's csv module" -- python3 -c '
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert len(rows) == 6, rows
assert rows[3]["domain"] == "we,b \"x\"", rows[3]
assert rows[1]["success"] == "false" and rows[1]["status"] == "FAILED"
assert float(rows[5]["duration_ms"]) == 60.0, rows[5]
assert rows[0]["nodes"] == "a=COMPLETED:10;b=COMPLETED:20", rows[0]["nodes"]
' "$SCRATCH/d.csv"
fi
expect_exit 0 "export yaml" -- ndf export deploy --format yaml
expect_match "$out" '^schema: [0-9]+$' "yaml mapping"
expect_match "$out" 'domain: "we,b \\"x\\""' "yaml strings are quoted"
if [ $have_python = 1 ] && python3 -c 'import yaml' 2>/dev/null; then
    ndf export deploy --format yaml >"$SCRATCH/d.yaml"
    expect_exit 0 "yaml read back by PyYAML" -- python3 -c '
import yaml, sys
d = yaml.safe_load(open(sys.argv[1]))
assert d["learning"]["executions"] == 6 and d["executions"][3]["domain"] == "we,b \"x\""
' "$SCRATCH/d.yaml"
fi
expect_exit 3 "export of an unknown pattern" -- ndf export nosuch
expect_match "$err" "no pattern named 'nosuch' in the store" "the missing pattern is named"
# names are values in SQL, never file names: a path is just an unknown name
expect_exit 3 "export of a path-like name" -- ndf export ../escape
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
expect_exit 3 "analytics of a traversal name" -- ndf analytics ../../etc/passwd
expect_match "$err" "no pattern named '../../etc/passwd' \\(not defined, nothing stored\\)" \
    "the traversal name is reported as unknown"

# reset-stats: the counts go back to the prior, the history stays
expect_exit 0 "reset-stats" -- ndf reset-stats deploy
expect_match "$out" "reset the statistics of 'deploy'" "reset-stats says so"
expect_exit 0 "reset state exported" -- ndf export deploy
expect_match "$out" '"executions":[[:space:]]*0,' "counts reset"
expect_exit 0 "runs after reset" -- ndf runs deploy
expect_match "$(printf '%s\n' "$out" | grep -c legacy-deploy)" '^6$' "the history stays"
expect_exit 0 "analytics after reset" -- ndf analytics deploy
expect_match "$out" "^History: .* over the 6 kept executions since .* \\(any before 'ndf reset-stats' and the uncounted included\\)$" \
    "analytics says its tables still cover the executions before the reset"
expect_exit 3 "reset-stats of an unknown pattern" -- ndf reset-stats nosuch

# backup, a corrupt store, restore
expect_exit 0 "backup" -- ndf backup
backup=$out
expect_match "$backup" "^$STATE/backups/ndf-[0-9T.]+Z\\.db\\.gz\$" "backup prints its file"
expect_exit 0 "zcat reads the backup" -- sh -c "zcat '$backup' | head -c 15"
expect_match "$out" '^SQLite format 3' "the backup is a gzip'd SQLite database"
cp "$STATE/ndf.db" "$SCRATCH/good.db"
rm -f "$STATE/ndf.db-wal" "$STATE/ndf.db-shm"
head -c 4096 /dev/urandom >"$STATE/ndf.db"
expect_exit 8 "a corrupt store exits 8" -- ndf export deploy
expect_match "$err" "ndf.db: the database is corrupt" "the error names the database"
expect_match "$err" "ndf restore $backup" "and the newest backup to restore"
expect_exit 0 "restore" -- ndf restore "$backup"
ls "$STATE" | grep -q '^ndf.db.corrupt-' && ok "the corrupt store is kept aside" ||
    not_ok "the corrupt store is gone"
expect_exit 0 "export after restore" -- ndf export deploy
expect_match "$out" '"id":[[:space:]]*"legacy-deploy-6"' "the history is back"
expect_exit 8 "restore of a file that is no backup" -- ndf restore "$CONF"
expect_match "$err" "is not a usable database" "which is said of the file, not of the store"
case $err in *"restore the newest backup"*) not_ok "the bad file is not called the store's corruption" ;;
             *) ok "no advice to restore the store for a bad backup file" ;; esac
expect_exit 3 "restore of a file that does not exist" -- ndf restore "$SCRATCH/no-such.db.gz"

# cleanup: a stored pattern that is no longer defined (an old-format file
# dropped in is imported by the next command)
printf '{"schema":1,"name":"gone","saved":1000,"learning":{"executions":1,"successes":1,"score":0.5}}' |
    gzip >"$STATE/gone.json.gz"
expect_exit 0 "cleanup --dry-run" -- ndf cleanup --dry-run
expect_match "$out" "would remove the stored state of 'gone'" "dry run names it"
expect_exit 0 "gone is still stored" -- ndf export gone
expect_exit 0 "cleanup" -- ndf cleanup --max-age-hours 1
expect_match "$out" "removed the stored state of 'gone'" "cleanup removes undefined patterns"
expect_match "$out" "^removed [0-9]+ executions? from the history" "cleanup prunes the history"
expect_exit 0 "defined patterns stay" -- ndf export deploy
expect_exit 3 "gone is gone" -- ndf export gone
expect_exit 2 "cleanup rejects a bad age" -- ndf cleanup --max-age-hours -3

expect_exit 0 "monitor" -- ndf monitor
expect_match "$out" '^cpu +[0-9.]+%' "monitor prints cpu"
expect_exit 0 "monitor --json" -- ndf monitor --json
expect_match "$out" '^\{"cpu":[0-9.e-]+,"memory":[0-9.e-]+,"disk_io":[0-9.e-]+' "monitor json"

# Learning persists: two runs, the counts continue; several processes at
# once lose no count (each execution's increment is in its own commit).
if "$NDF" run --help >/dev/null 2>&1; then
    expect_exit 0 "reset before runs" -- ndf reset-stats deploy
    expect_exit 0 "first run" -- ndf run deploy --force --domain web
    expect_exit 0 "second run" -- ndf run deploy --force --domain web
    expect_exit 0 "export after two runs" -- ndf export deploy
    expect_match "$out" '"executions":[[:space:]]*2,' "learning continued across runs"
    expect_match "$out" '"status":[[:space:]]*"SUCCEEDED"' "history recorded"
    for i in 1 2 3 4; do
        (for j in 1 2 3 4 5; do ndf -q run deploy --force >/dev/null 2>&1 || echo fail; done) \
            >"$SCRATCH/loop$i" &
    done
    wait
    cat "$SCRATCH"/loop* | grep -q fail && not_ok "a concurrent run failed" ||
        ok "20 concurrent runs succeeded"
    expect_exit 0 "export after concurrent runs" -- ndf export deploy
    expect_match "$out" '"executions":[[:space:]]*22,' "every concurrent run was counted"
fi
finish
