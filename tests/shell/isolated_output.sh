#!/bin/sh
# An isolated step's output is kept exactly as an in-process step's: the
# worker sends stdout and stderr to the host as they are read, and the
# host keeps them under the step's output_limit (spilled past the raw
# window), counts what the limit dropped, and writes them to the store
# while the step runs, so `ndf logs --follow` sees them live.  The build's
# own plugins count as third-party here (NDF_BUNDLED_PLUGIN_DIR names no
# directory), so plugins.isolation = "auto" runs the exec step in a worker.
. "$top_srcdir/tests/shell/lib.sh"
export NDF_BUNDLED_PLUGIN_DIR=$SCRATCH/none
export NDF_RUNTIME_DIR=$SCRATCH/run
mkdir -m 700 "$NDF_RUNTIME_DIR"
STATE=$SCRATCH/state
GO=$SCRATCH/go
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<EOF2
storage: { path = "$STATE"; };
confidence: { threshold = 0.0; };
plugins: { isolation = "auto"; };
patterns = (
    { name = "where"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { argv = [ "sh", "-c", "tr '\\\\000' ' ' </proc/\$PPID/cmdline" ]; }; } ); }; },
    { name = "fits"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { argv = [ "head", "-c", "2500000", "$SCRATCH/text" ]; output_limit = 3000000; }; } ); }; },
    { name = "over"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { shell = true; command = "cat $SCRATCH/text; head -c 700000 $SCRATCH/text >&2";
                 output_limit = 3000000; }; } ); }; },
    { name = "small"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { argv = [ "head", "-c", "100000", "$SCRATCH/text" ]; }; } ); }; },
    { name = "live"; type = "sequential"; params = { steps = ( { name = "s"; step = "exec";
      params = { shell = true;
                 command = "echo first; while [ ! -e $GO ]; do sleep 0.05; done; echo second"; }; } ); }; }
);
EOF2
ndf() { "$NDF" -c "$CONF" "$@"; }
last_id() { ndf runs "$1" --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p'; }
seq 1 600000 >"$SCRATCH/text" # 4.5 MB of numbered lines
# with_nl: its input, and the newline logs adds to output that does not end in one
with_nl() { python3 -c 'import sys; b = sys.stdin.buffer.read(); sys.stdout.buffer.write(b if b.endswith(b"\n") else b + b"\n")'; }
total=$(wc -c <"$SCRATCH/text")

expect_exit 0 "run where" -- ndf run where
expect_match "$(ndf logs "$(last_id where)" s)" "__step-worker" "the exec step runs in a step worker"

expect_exit 0 "an isolated step writes 2,500,000 bytes through a 3,000,000-byte limit" -- ndf run fits
id=$(last_id fits)
ndf logs "$id" s >"$SCRATCH/got"
head -c 2500000 "$SCRATCH/text" | with_nl >"$SCRATCH/want"
cmp -s "$SCRATCH/got" "$SCRATCH/want" && ok "logs prints all 2,500,000 bytes" ||
    not_ok "logs printed $(wc -c <"$SCRATCH/got") bytes, not the 2,500,000 written"
expect_exit 0 "status --json of it" -- ndf status "$id" --json
expect_match "$out" "\"stdout_truncated\":$((2500000 - 65536))[,}]" \
    "status --json counts exactly what its JSON leaves out of them"

expect_exit 0 "an isolated step writes $total bytes through a 3,000,000-byte limit" -- ndf run over
id=$(last_id over)
ndf logs "$id" s --stream stdout >"$SCRATCH/got"
tail -c 3000000 "$SCRATCH/text" >"$SCRATCH/want"
cmp -s "$SCRATCH/got" "$SCRATCH/want" && ok "logs prints exactly the newest 3,000,000 bytes of stdout" ||
    not_ok "logs printed $(wc -c <"$SCRATCH/got") bytes of stdout"
ndf logs "$id" s --stream stderr >"$SCRATCH/got"
head -c 700000 "$SCRATCH/text" | with_nl | cmp -s - "$SCRATCH/got" && ok "and all 700,000 bytes of stderr" ||
    not_ok "logs printed $(wc -c <"$SCRATCH/got") bytes of stderr"
expect_exit 0 "status --json of it" -- ndf status "$id" --json
expect_match "$out" "\"stdout_truncated\":$((total - 65536))[,}]" \
    "the stdout count is exact: $((total - 3000000)) dropped by the limit and the JSON's own cut"
expect_match "$out" "\"stderr_truncated\":$((700000 - 65536))[,}]" "and the stderr count"

expect_exit 0 "an isolated step with the default limit" -- ndf run small
ndf logs "$(last_id small)" s >"$SCRATCH/got"
head -c 100000 "$SCRATCH/text" | tail -c 65536 | with_nl | cmp -s - "$SCRATCH/got" &&
    ok "keeps the newest 64 KiB, as in process" || not_ok "kept $(wc -c <"$SCRATCH/got") bytes"

# ---- logs --follow sees an isolated step's output while it runs ----
running_id() { ndf runs live --status RUNNING --limit 1 --json | sed -n 's/^\[{"id":"\([^"]*\)".*/\1/p'; }
has_id() { [ -n "$(running_id)" ]; }
rm -f "$GO"
"$NDF" -c "$CONF" run live >/dev/null 2>&1 &
RUNNER=$!
wait_for has_id
id=$(running_id)
"$NDF" -c "$CONF" logs --follow "$id" s >"$SCRATCH/follow.out" 2>&1 &
FOLLOW=$!
if wait_for grep -q first "$SCRATCH/follow.out"; then
    ok "logs --follow printed the isolated step's first line while it runs"
else
    not_ok "logs --follow printed nothing while the isolated step runs"
fi
kill -0 "$RUNNER" 2>/dev/null && ok "(the step was still waiting)" || not_ok "the run ended early"
touch "$GO"
wait "$RUNNER"
expect_match "$?" '^0$' "the run succeeded"
wait "$FOLLOW"
expect_match "$?" '^0$' "logs --follow ended with the execution"
expect_match "$(tr '\n' ' ' <"$SCRATCH/follow.out")" '^first second $' "and printed the step's output once"

# ---- ndf reaps its step workers before it exits ----
# run under a child subreaper that does not reap: a worker left to exit
# after ndf (when its socket closes) would be its zombie, as under a
# container's first process that reaps nobody
cat >"$SCRATCH/reaper.py" <<'EOF2'
import ctypes, os, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.5)
me, left = os.getpid(), []
for pid in os.listdir('/proc'):
    try:
        with open('/proc/%s/stat' % pid) as f:
            st = f.read()
    except OSError:
        continue
    if int(st[st.rindex(')') + 2:].split()[1]) == me:
        left.append('%s(%s)' % (pid, st[st.index('(') + 1:st.rindex(')')]))
print(rc, len(left), ' '.join(left))
EOF2
if command -v python3 >/dev/null 2>&1; then
    got=$(python3 "$SCRATCH/reaper.py" "$NDF" -c "$CONF" run small)
    expect_match "$got" '^0 0 ?$' "no step worker outlives ndf run (exit status, processes left: $got)"
else
    ok "no step worker outlives ndf run # SKIP no python3"
fi
finish
