#!/bin/sh
# `ndf serve` and `ndf ctl`: the protocol (malformed, over-long, unknown),
# many clients at once, a plugin replaced 100 times under load (zero failed
# executions, each from one whole build, no fd or memory growth), broken new
# builds and a removed plugin, configuration reloads (syntax error, semantic
# error, valid, SIGHUP), the peer uid check, and SIGTERM with executions in
# flight (no learning lost).
#
# NDF_SERVE_RELOADS=N: replacements of the plugin under load (100; 30 in a
# sanitizer build, where each client call costs several times more and RSS
# is not measured; NDF_SERVE_RELOADS=100 there runs the full count).
. "$top_srcdir/tests/shell/lib.sh"
if [ -n "${NDF_SAN_CFLAGS:-}" ]; then RELOADS=${NDF_SERVE_RELOADS:-30}; else RELOADS=${NDF_SERVE_RELOADS:-100}; fi
# the descriptor and memory baseline is taken after the first 10
[ "$RELOADS" -ge 20 ] || RELOADS=20

FIX=${NDF_FIXTURE_DIR:?run through make check}
# A private copy of the program: tests running beside this one (install.sh)
# may relink the build tree's while the client loops below exec it.
cp "$NDF" "$SCRATCH/ndf-under-test" && NDF=$SCRATCH/ndf-under-test
WATCH=$SCRATCH/watch
RUN=$SCRATCH/run
mkdir -m 700 "$WATCH" "$RUN" "$SCRATCH/state"
export NDF_RUNTIME_DIR=$RUN
export NDF_PLUGIN_PATH="$NDF_PLUGIN_PATH:$WATCH"
SOCK=$RUN/ndf.sock
CONF=$SCRATCH/ndf.conf
write_conf() { # extra text for the probe's first step parameters, name of the noop pattern
    cat >"$CONF" <<EOF
confidence: { threshold = 0.0; };
executor: { threads = 4; kill_grace = 0.5; };
storage: { path = "$SCRATCH/state"; history_limit = 50; };
# The fixture's state handed from build to build is the host's: its steps
# run in process (trusted), not in a step worker.
plugins: { cache_dir = "$RUN/cache"; trust = [ "reload" ]; };
patterns = (
    { name = "probe"; type = "reload_seq";
      params = { steps = ( { name = "a"; step = "reload_step"; params = { $1 }; },
                           { name = "b"; step = "reload_step"; } ); }; },
    { name = "$2"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; },
    { name = "slow"; type = "sequential";
      params = { steps = ( { name = "s"; step = "sleep"; params = { seconds = 0.6; }; } ); }; },
    { name = "long"; type = "sequential";
      params = { steps = ( { name = "s"; step = "sleep"; params = { seconds = 60.0; }; } ); }; }
);
EOF
}
write_conf "sleep_ms = 2.0;" nop
export NDF_CONFIG=$CONF
cp "$FIX/reload_v1.so" "$WATCH/reload.so"

"$NDF" serve --grace 20 --debounce 0.05 --removal-grace 3 2>"$SCRATCH/serve.log" &
SERVER=$!
for i in $(seq 1 100); do
    "$NDF" ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
ctl() { "$NDF" ctl "$@"; }

# ---- the basics ----
expect_exit 0 "ctl ping answers" -- ctl ping
expect_match "$out" '"generation":1' "the first generation serves"
if [ "$(stat -c %a "$SOCK")" = 600 ]; then ok "socket mode 0600"; else not_ok "socket mode $(stat -c %a "$SOCK")"; fi
expect_exit 0 "ctl run probe" -- ctl run probe
expect_match "$err" '^pattern probe: COMPLETED in [0-9.]+s \(execution [^)]+\): 2 COMPLETED$' \
    "ctl run reports as ndf run does"
expect_match "$err" 'step a: COMPLETED \([0-9.]+s\): step v1' "the probe runs build 1"
expect_exit 0 "ctl run --json" -- ctl run probe --json
expect_match "$out" '^\{"id":"[^"]+","pattern":"probe","done":true,"status":"ok"' "run --json prints the record"
expect_exit 3 "ctl run of an unknown pattern exits 3" -- ctl run nosuch
expect_match "$err" "nosuch" "and names it"
expect_exit 0 "ctl list" -- ctl list
ctl_list_head=$(printf '%s\n' "$out" | head -1)
"$NDF" list >"$SCRATCH/list" 2>/dev/null
expect_match "$ctl_list_head" "^$(head -1 "$SCRATCH/list")\$" "ctl list prints what ndf list prints"
expect_exit 3 "ctl show of an unknown pattern exits 3 as ndf show does" -- ctl show nosuch
expect_exit 0 "ctl similar with a context file" -- sh -c "echo '{\"domain\":\"x\"}' | $NDF ctl similar --context - --threshold 0"
expect_exit 0 "ctl export -o writes on the client side" -- ctl export probe -o "$SCRATCH/probe.json"
expect_match "$(head -c 200 "$SCRATCH/probe.json")" '"name"' "the export file is the stored JSON"
expect_exit 0 "ctl config" -- ctl config
expect_match "$out" '"server"' "ctl config prints the settings"
expect_match "$out" '"patterns":\[\{"name":"probe"' "and the patterns, as ndf config does"
# fclose failing (a full disk) used to be followed by a second fclose
expect_exit 8 "ctl export -o to a full device fails cleanly" -- ctl export probe -o /dev/full
expect_match "$err" "cannot write /dev/full" "and says so"
# A minute long, so that however loaded the machine, it runs until cancelled.
id=$(ctl run long --async)
expect_exit 0 "ctl status of a running execution" -- ctl status "$id"
expect_match "$out" 'RUNNING|PENDING' "shows it running"
expect_exit 0 "ctl cancel" -- ctl cancel "$id"
for t in $(seq 1 200); do
    ctl status "$id" --json 2>/dev/null | grep -q '"done":true' && break
    sleep 0.05
done
expect_exit 0 "ctl status after cancel" -- ctl status "$id" --json
expect_match "$out" '"status":"cancelled"' "the execution was cancelled"
expect_exit 0 "ctl status prints as ndf status does" -- ctl status "$id"
expect_match "$out" "^execution $id: cancelled in [0-9.]+s" "the status line"
expect_exit 2 "ctl cancel of a finished execution is an error" -- ctl cancel "$id"
expect_match "$err" "has already finished: nothing to cancel" "and says so"
expect_exit 2 "ctl rollback with an unknown level is an error" -- ctl rollback "$id" --level bogus
expect_match "$err" '"level" must be pattern, phase or complete' "and names the levels"
expect_exit 0 "ctl export -o - writes to standard output" -- sh -c "cd '$SCRATCH' && $NDF ctl export probe -o -"
expect_match "$out" '"pattern_name":"probe"|"probe"' "the export is on standard output"
[ ! -e "$SCRATCH/-" ] && ok "and no file named '-' was written" || not_ok "a file named '-' was written"
expect_exit 0 "ctl run --fallback" -- ctl run nosuch --fallback nop
expect_match "$err" "falling back to 'nop' \\(cause: not found\\)" "says why it fell back"
expect_exit 3 "ctl status of an unknown id exits 3" -- ctl status no-such-id
expect_exit 2 "ctl with an unknown verb exits 2" -- ctl frobnicate
expect_exit 9 "ctl with no server exits 9" -- ctl --socket "$SCRATCH/none.sock" ping
expect_match "$err" "no ndf server is listening" "and says so"

# ---- malformed requests: an error each, the server stays up ----
printf '%s\n' 'not json' '{"cmd":42}' '{"cmd":"nope"}' '{"cmd":"run","pattern":7}' '[1,2]' \
    '{"cmd":"run","pattern":"probe","timeout":"soon"}' '{"cmd":"list","args":[1]}' \
    '{"cmd":"similar","args":["--context","-"]}' '' '   ' '{"cmd":"ping"}' >"$SCRATCH/bad.in"
expect_exit 0 "malformed requests get answers (blank lines need none)" -- \
    sh -c "timeout 30 $NDF ctl send <'$SCRATCH/bad.in'"
nbad=$(printf '%s\n' "$out" | grep -c '"ok":false')
[ "$nbad" -eq 8 ] && ok "eight error responses" || not_ok "eight error responses (got $nbad)"
expect_match "$(printf '%s\n' "$out" | tail -1)" '"ok":true' "the last request, valid, succeeds"
expect_match "$out" 'unknown command' "an unknown command is named"
expect_match "$out" '"timeout\\" must be a number' "a mistyped member is named"
expect_match "$out" 'not --context' "a context file for the server to read is refused"
# Served commands take data, not paths, and their options are exact.
printf '%s\n' '{"cmd":"similar","args":["--c","/etc/shadow"]}' \
    '{"cmd":"export","args":["probe","-o","'"$SCRATCH"'/written-by-server"]}' \
    '{"cmd":"list","context":{"domain":"x"}}' \
    '{"cmd":"run","pattern":"nop\u0000evil"}' \
    '{"cmd":"similar","args":["--threshold","0"],"context":{"domain":"x"}}' >"$SCRATCH/data.in"
expect_exit 0 "requests naming server-side files get answers" -- sh -c "$NDF ctl send <'$SCRATCH/data.in'"
expect_match "$(printf '%s\n' "$out" | sed -n 1p)" '"exit":2,.*abbreviations are not accepted' \
    "similar --c is an unknown option, not --context"
expect_match "$(printf '%s\n' "$out" | sed -n 2p)" '"ok":false,.*the client writes the file, not -o' \
    "export -o is refused on the server"
[ ! -e "$SCRATCH/written-by-server" ] && ok "and nothing was written" || not_ok "the server wrote a client's path"
expect_match "$(printf '%s\n' "$out" | sed -n 3p)" '"ok":false,.*list takes no \\"context\\"' \
    "a context for a command without one is refused"
expect_match "$(printf '%s\n' "$out" | sed -n 4p)" '"ok":false,.*NUL' "a NUL inside a name is refused"
expect_match "$(printf '%s\n' "$out" | sed -n 5p)" '"ok":true,"exit":0,"stdout":"' \
    "similar takes its context as data"
printf '{"cmd":"\377\376"}\n{"cmd":"run","pattern":"\300\257"}\n' >"$SCRATCH/utf8.in"
"$NDF" ctl send <"$SCRATCH/utf8.in" >"$SCRATCH/utf8.out" 2>&1
expect_match "$(cat "$SCRATCH/utf8.out")" 'not valid UTF-8' "invalid UTF-8 is refused"
if LC_ALL=C grep -q "$(printf '[\200-\377]')" "$SCRATCH/utf8.out"; then
    not_ok "invalid UTF-8 was echoed back raw"
else
    ok "and never echoed back raw"
fi
awk 'BEGIN { printf "{\"cmd\":\""; for (i = 0; i < 1100000; i++) printf "a"; print "\"}" }' \
    >"$SCRATCH/long.in"
expect_exit 0 "an over-long request is answered" -- sh -c "$NDF ctl send <'$SCRATCH/long.in'"
expect_match "$out" 'longer than 1048576 bytes' "with an error naming the limit"
expect_exit 0 "the server is still up" -- ctl ping

# ---- many clients at once ----
pids=
for c in $(seq 1 16); do
    (for i in 1 2 3 4 5; do "$NDF" ctl run nop >/dev/null 2>&1 || echo fail; done) >"$SCRATCH/c$c" &
    pids="$pids $!"
done
wait $pids
nfail=$(cat "$SCRATCH"/c[0-9]* | grep -c fail)
[ "$nfail" -eq 0 ] && ok "16 concurrent clients, 80 runs, none failed" || not_ok "$nfail concurrent runs failed"

# ---- a plugin replaced $RELOADS times (100 by default) under load ----
fds() { ls /proc/$SERVER/fd | wc -l; }
rss() { awk '/^VmRSS/ { print $2 }' /proc/$SERVER/status; }
serving() { ctl run probe --json 2>/dev/null | sed -n 's/.*"message":"type v\([0-9]\)".*/\1/p'; }
versions() { grep -o '"message":"[a-z]* v[0-9]' | grep -o 'v[0-9]' | sort -u | tr -d '\n'; }
replace() { # version, method
    if [ "$2" = cp ]; then
        cp "$FIX/reload_v$1.so" "$WATCH/reload.so"
    else
        cp "$FIX/reload_v$1.so" "$WATCH/.reload.tmp" && mv "$WATCH/.reload.tmp" "$WATCH/reload.so"
    fi
}
wait_version() {
    for t in $(seq 1 200); do
        [ "$(serving)" = "$1" ] && return 0
        sleep 0.02
    done
    return 1
}
rm -f "$SCRATCH/stop"
(
    while [ ! -e "$SCRATCH/stop" ]; do
        o=$("$NDF" ctl run probe --json 2>&1)
        rc=$?
        printf '%s %s\n' "$rc" "$(printf '%s\n' "$o" | versions)"
        [ "$rc" -eq 0 ] || printf '%s\n' "$o" | head -3 >>"$SCRATCH/load-failures"
    done
) >"$SCRATCH/load.log" &
LOAD=$!
(
    while [ ! -e "$SCRATCH/stop" ]; do "$NDF" ctl run probe >/dev/null 2>&1 || echo fail; done
) >"$SCRATCH/load2.log" &
LOAD2=$!
missed=0
v=1
for i in $(seq 1 "$RELOADS"); do
    v=$((v % 3 + 1))
    if [ $((i % 2)) -eq 0 ]; then replace $v cp; else replace $v mv; fi
    wait_version $v || missed=$((missed + 1))
    if [ "$i" -eq 10 ]; then fds0=$(fds); rss0=$(rss); fi
done
sleep 0.3
fds1=$(fds)
rss1=$(rss)
touch "$SCRATCH/stop"
wait "$LOAD" "$LOAD2"
[ "$missed" -eq 0 ] && ok "each of $RELOADS replacements served within 4 s" || not_ok "$missed replacements not seen"
nruns=$(wc -l <"$SCRATCH/load.log")
nfailed=$(grep -vc '^0 ' "$SCRATCH/load.log")
nmixed=$(grep -Evc '^0 v[0-9]$' "$SCRATCH/load.log")
nversions=$(awk '{ print $2 }' "$SCRATCH/load.log" | sort -u | wc -l)
[ "$nruns" -gt $((RELOADS / 2)) ] && ok "the client loop ran $nruns executions during the reloads" || not_ok "only $nruns executions ran"
[ "$nfailed" -eq 0 ] && ok "zero failed executions" || {
    not_ok "$nfailed executions failed"
    head -5 "$SCRATCH/load-failures" | sed 's/^/#   /'
}
[ "$(grep -c fail "$SCRATCH/load2.log")" -eq 0 ] && ok "zero failures in the second client" || not_ok "second client failed"
[ "$nmixed" -eq 0 ] && ok "every result came from one whole build" || not_ok "$nmixed results mixed builds"
[ "$nversions" -eq 3 ] && ok "all three builds were observed" || not_ok "$nversions builds observed"
echo "# fds $fds0 -> $fds1, VmRSS $rss0 kB -> $rss1 kB over $((RELOADS - 10)) reloads"
[ "$fds1" -le $((fds0 + 4)) ] && ok "open descriptors did not grow ($fds0 -> $fds1)" || not_ok "fds grew $fds0 -> $fds1"
# Under AddressSanitizer freed memory sits in its quarantine (256 MiB by
# default) and RSS says nothing about leaks; LeakSanitizer checks them at
# the server's exit instead.  ThreadSanitizer's shadow memory grows with
# what the threads touch, so RSS says nothing there either.
if grep -q 'libasan\|libtsan' "/proc/$SERVER/maps" 2>/dev/null ||
    nm "$NDF" 2>/dev/null | grep -q '__asan_init\|__tsan_init'; then
    ok "# SKIP resident memory under a sanitizer (quarantine or shadow memory; leaks are checked at exit)"
else
    [ "$rss1" -le $((rss0 + 8192)) ] && ok "resident memory did not grow materially ($rss0 -> $rss1 kB)" || not_ok "RSS grew $rss0 -> $rss1 kB"
fi
runs=$(ctl run probe --json | grep -o 'step v[0-9] run [0-9]*' | sed 's/.* //' | tail -1)
[ "${runs:-0}" -gt "$nruns" ] && ok "state handed over across reloads (ABI 1.1): run $runs" \
    || not_ok "run count ${runs:-none} after $nruns executions: state not handed over"
sleep 0.3
expect_exit 0 "ping after the reloads" -- ctl ping
expect_match "$out" '"plugins_retired":0' "every old build was unloaded"
expect_match "$out" '"plugins_not_unloadable":0' "and left the process"
nlinger=$(ls "$RUN/cache" | grep -c '^reload')
[ "$nlinger" -eq 1 ] && ok "one private copy left in the cache" || not_ok "$nlinger private copies in the cache"

# ---- broken new builds keep the old one serving ----
cur=$(serving)
for bad in bad_major init_fails no_descriptor; do
    cp "$FIX/$bad.so" "$WATCH/reload.so"
    sleep 0.4
    [ "$(serving)" = "$cur" ] && ok "$bad: build $cur keeps serving" || not_ok "$bad: probe broke"
    ctl plugins >"$SCRATCH/plugins" 2>&1
    expect_match "$(cat "$SCRATCH/plugins")" "refused: $WATCH/reload.so: .*new file sha256 [0-9a-f]{16} refused; version $cur" \
        "$bad: ctl plugins shows the refusal and the new file's hash"
done
expect_match "$(cat "$SCRATCH/serve.log")" "init failed .*frobnicator" "the log says why init failed"

# ==== section: refused builds are retried ====
failed_count() { ctl ping 2>/dev/null | sed -n 's/.*"reloads_failed":\([0-9]*\).*/\1/p'; }
f0=$(failed_count)
cur=$(serving)
# A good build refused for its mode alone: fixing the mode is enough.
cp "$FIX/reload_v3.so" "$SCRATCH/v3.so"
chmod 664 "$SCRATCH/v3.so"
mv "$SCRATCH/v3.so" "$WATCH/reload.so"
sleep 0.4
[ "$(serving)" = "$cur" ] && ok "a group-writable build is refused, $cur keeps serving" \
    || not_ok "a group-writable build was not refused"
ctl plugins >"$SCRATCH/plugins" 2>&1
expect_match "$(cat "$SCRATCH/plugins")" "refused: $WATCH/reload.so: .*group-writable \(mode 0664\)" \
    "ctl plugins shows the mode refusal"
f1=$(failed_count)
[ "${f1:-0}" -gt "${f0:-0}" ] && ok "the refusal counts in reloads_failed ($f0 -> $f1)" \
    || not_ok "reloads_failed did not move ($f0 -> $f1)"
chmod go-w "$WATCH/reload.so"
wait_version 3 && ok "chmod go-w alone retries the refused build, which now serves" \
    || not_ok "the fixed build was not retried (serving $(serving))"
# Refused for its directory: nothing about the file changes when that is
# fixed, so only an explicit reload retries it.
chmod g+w "$WATCH"
replace 1 cp
sleep 0.4
[ "$(serving)" = 3 ] && ok "a build in a group-writable directory is refused" || not_ok "it was not refused"
chmod g-w "$WATCH"
sleep 0.3
[ "$(serving)" = 3 ] && ok "fixing the directory alone does not retry it" || not_ok "it was retried"
expect_exit 0 "ctl reload retries refused builds" -- ctl reload
wait_version 1 && ok "the retried build serves" || not_ok "ctl reload did not retry it (serving $(serving))"
# ==== end: refused builds are retried ====

# ---- a removed plugin ----
rm "$WATCH/reload.so"
sleep 0.1 # past the 0.05 s debounce, well inside the 3 s --removal-grace (slow under TSan)
ctl run nop >/dev/null 2>&1 && [ -n "$(serving)" ] && ok "a removed file gets a grace period (an installer may be replacing it)" \
    || not_ok "the plugin went away at once"
for t in $(seq 1 200); do ctl run probe >/dev/null 2>&1 || break; sleep 0.05; done
expect_exit 3 "the removed plugin's pattern is gone" -- ctl run probe
expect_match "$(cat "$SCRATCH/serve.log")" "unknown pattern type 'reload_seq'" "the log says why it no longer validates"
expect_exit 0 "other patterns still run" -- ctl run nop
replace 2 cp
wait_version 2 && ok "the plugin is back when its file is" || not_ok "the plugin did not come back"

# ---- configuration reloads ----
cp "$CONF" "$SCRATCH/good.conf"
printf 'patterns = ( \n' >>"$CONF"
expect_exit 2 "reload with a syntax error exits 2" -- ctl reload
expect_match "$err" "$CONF:[0-9]+" "and names file:line"
expect_exit 0 "the old configuration keeps serving" -- ctl run nop
write_conf "sleep_ms = 20000.0;" nop
expect_exit 2 "reload with a semantic error exits 2" -- ctl reload
expect_match "$err" "sleep_ms.*out of range" "and says what is wrong"
expect_exit 0 "the old configuration still serves" -- ctl run nop
# a cycle of sub-patterns (a meta phase and a pattern step) is refused at
# reload as check-config refuses it; one run of it would have overflowed
# the stack and killed the server
write_conf "sleep_ms = 2.0;" nop
sed -i '$d' "$CONF"
cat >>"$CONF" <<EOF
    ,{ name = "ca"; type = "meta"; params = { phases = ( { name = "ph"; patterns = [ "cb" ]; } ); }; },
    { name = "cb"; type = "sequential";
      params = { steps = ( { name = "s"; step = "pattern"; params = { pattern = "ca"; }; } ); }; }
);
EOF
expect_exit 2 "reload of a configuration with a cycle exits 2" -- ctl reload
expect_match "$err" "pattern 'ca' runs itself: ca -> cb \\(.*\\); cb -> ca \\(.*\\)" "and names every edge"
expect_exit 0 "the old configuration serves on" -- ctl run nop
expect_exit 3 "the cyclic patterns are not served" -- ctl run ca
write_conf "sleep_ms = 1.0;" nop2
expect_exit 0 "a valid configuration reloads" -- ctl reload
expect_match "$out" "configuration reloaded" "and says so"
expect_exit 0 "its new pattern runs" -- ctl run nop2
expect_exit 3 "its removed pattern is gone" -- ctl run nop
write_conf "sleep_ms = 1.0;" nop3
kill -HUP "$SERVER"
for t in $(seq 1 100); do ctl run nop3 >/dev/null 2>&1 && break; sleep 0.05; done
expect_exit 0 "SIGHUP reloads the configuration" -- ctl run nop3
expect_exit 0 "learning carried over across reloads" -- ctl show probe --json
expect_match "$out" '"executions":[1-9][0-9]{2,}' "probe keeps its executions"

# ---- another uid is refused ----
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
    # Open the path up so only SO_PEERCRED stands in the way.
    chmod 755 "$SCRATCH" "$RUN"
    chmod 666 "$SOCK"
    expect_exit 2 "uid 65534 is refused" -- setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$NDF" ctl --socket "$SOCK" ping
    expect_match "$err" "permission denied: uid 65534" "with a message naming the uid"
    chmod 600 "$SOCK"
    chmod 700 "$SCRATCH" "$RUN"
else
    echo "# skipped the peer uid test: needs root and setpriv(1)"
fi

# ---- a member of server.group through a supplementary group only ----
grp=$(getent group | awk -F: '$3 > 0 && $3 < 1000 && $3 != 65534 { print $1 ":" $3; exit }')
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1 && [ -n "$grp" ]; then
    printf 'storage: { path = "%s"; };\nplugins: { cache_dir = "%s"; };\nserver: { group = "%s"; };\n' \
        "$SCRATCH/gstate" "$RUN/gcache" "${grp%%:*}" >"$SCRATCH/group.conf"
    "$NDF" -c "$SCRATCH/group.conf" serve --no-watch --socket "$RUN/g.sock" 2>"$SCRATCH/gserve.log" &
    GSERVER=$!
    for i in $(seq 1 100); do
        "$NDF" ctl --socket "$RUN/g.sock" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    chmod 755 "$SCRATCH" "$RUN"
    expect_exit 0 "a supplementary member of server.group may connect" -- \
        setpriv --reuid=65534 --regid=65534 --groups="${grp#*:}" "$NDF" ctl --socket "$RUN/g.sock" ping
    chmod 666 "$RUN/g.sock" # so that only SO_PEERCRED stands in the way
    expect_exit 2 "a non-member is refused" -- setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$NDF" ctl --socket "$RUN/g.sock" ping
    expect_match "$err" "permission denied: uid 65534 .*group '${grp%%:*}'" "naming the group"
    chmod 700 "$SCRATCH" "$RUN"
    "$NDF" ctl --socket "$RUN/g.sock" shutdown >/dev/null 2>&1
    wait "$GSERVER"
else
    echo "# skipped the group member test: needs root, setpriv(1) and a group"
fi

# ---- out of file descriptors: new clients are told so, the loop does not spin ----
printf 'storage: { path = "%s"; };\nplugins: { cache_dir = "%s"; };\n' \
    "$SCRATCH/fdstate" "$RUN/fdcache" >"$SCRATCH/fd.conf"
(ulimit -n 40 && exec "$NDF" -c "$SCRATCH/fd.conf" serve --no-watch --socket "$RUN/fd.sock") \
    2>"$SCRATCH/fdserve.log" &
FDSERVER=$!
for i in $(seq 1 100); do
    "$NDF" ctl --socket "$RUN/fd.sock" ping >/dev/null 2>&1 && break
    sleep 0.05
done
python3 - "$RUN/fd.sock" "$FDSERVER" >"$SCRATCH/fd.out" 2>&1 <<'EOP'
import socket, sys, time
path, pid = sys.argv[1], sys.argv[2]
held = []
for _ in range(60):  # more than the server's 40 descriptors allow
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
time.sleep(0.5)
def ticks():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
t0 = ticks()
time.sleep(2)
print("ticks", ticks() - t0)
c = socket.socket(socket.AF_UNIX)
c.settimeout(10)
try:
    c.connect(path)
    c.sendall(b'{"cmd":"ping"}\n')
    print("answer", c.recv(4096).decode(errors="replace").strip() or "closed")
except socket.timeout:
    print("answer none")
except OSError as e:  # a full backlog refuses at once, which is fine too
    print("answer refused", e.errno)
EOP
ticks=$(sed -n 's/^ticks //p' "$SCRATCH/fd.out")
[ -n "$ticks" ] && [ "$ticks" -lt 20 ] && ok "no busy loop out of descriptors ($ticks ticks in 2 s)" ||
    not_ok "the server spins out of descriptors: $(cat "$SCRATCH/fd.out")"
# A new client is refused with a reason or closed, never left hanging, and
# once the idle clients are gone the server serves again.
expect_match "$(sed -n 's/^answer //p' "$SCRATCH/fd.out")" '"ok":(false|true)|^closed$|^refused ' \
    "a new client is not left hanging out of descriptors"
expect_exit 0 "the server serves again once descriptors are free" -- \
    "$NDF" ctl --socket "$RUN/fd.sock" ping
kill -TERM "$FDSERVER" 2>/dev/null
wait "$FDSERVER" 2>/dev/null

# ---- connection limits: per-uid limit, the owner's reserve, idle timeout ----
printf 'storage: { path = "%s"; };\nplugins: { cache_dir = "%s"; };\nserver: { idle_timeout = %s; };\n%s\n' \
    "$SCRATCH/lstate" "$RUN/lcache" 600 \
    'patterns = ( { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; } );' \
    >"$SCRATCH/limits.conf"
sed 's/idle_timeout = 600;/idle_timeout = 1;/' "$SCRATCH/limits.conf" >"$SCRATCH/idle.conf"
start_server() { # config socket log: starts it in the background, waits for its ping
    "$NDF" -c "$1" serve --no-watch --socket "$2" 2>"$3" &
    for i in $(seq 1 200); do
        "$NDF" ctl --socket "$2" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
}
start_server "$SCRATCH/limits.conf" "$RUN/l.sock" "$SCRATCH/lserve.log"
LSERVER=$!
rm -f "$SCRATCH/held" "$SCRATCH/release"
python3 - "$RUN/l.sock" "$SCRATCH/held" "$SCRATCH/release" >"$SCRATCH/limits.out" 2>&1 <<'EOP' &
import os, socket, sys, time
path, flag, release = sys.argv[1:4]
held = []
for _ in range(600):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
def state(s):
    try:
        d = s.recv(4096, socket.MSG_DONTWAIT)
        return "closed" if d == b"" else d.decode(errors="replace")
    except BlockingIOError:
        return "open"
said = {}
for _ in range(600):  # until the server has taken or turned away all of them
    for i, s in enumerate(held):
        if i not in said:
            t = state(s)
            if t != "open":
                said[i] = t
    if len(held) - len(said) <= 136:
        break
    time.sleep(0.05)
print("open", len(held) - len(said))
sys.stdout.flush()
open(flag, "w").close()
for _ in range(1200):
    if os.path.exists(release):
        break
    time.sleep(0.05)
EOP
PY=$!
for i in $(seq 1 1200); do [ -e "$SCRATCH/held" ] && break; sleep 0.05; done
expect_match "$(cat "$SCRATCH/limits.out")" '^open 136$' \
    "600 idle connections of one uid: 128 (its limit) and the owner's 8 reserved stay open"
expect_exit 0 "the owner can still ping" -- "$NDF" ctl --socket "$RUN/l.sock" ping
expect_exit 3 "and ask for a status (none yet: exit 3)" -- "$NDF" ctl --socket "$RUN/l.sock" status
expect_match "$err" "no execution has run yet" "the status request was served"
expect_exit 6 "but not run work past the limits" -- "$NDF" ctl --socket "$RUN/l.sock" run nop
expect_match "$err" "kept for its owner, which serve only ping, status and reload" "and is told why"
touch "$SCRATCH/release"
wait "$PY"
for i in $(seq 1 200); do
    "$NDF" ctl --socket "$RUN/l.sock" run nop >/dev/null 2>&1 && break
    sleep 0.05
done
expect_exit 0 "with the idle clients gone, work runs again" -- "$NDF" ctl --socket "$RUN/l.sock" run nop
kill -TERM "$LSERVER" 2>/dev/null
wait "$LSERVER" 2>/dev/null
# server.idle_timeout: an idle client, and one that sent half a request,
# are told and closed; one that was answered gets the time again
start_server "$SCRATCH/idle.conf" "$RUN/i.sock" "$SCRATCH/iserve.log"
ISERVER=$!
python3 - "$RUN/i.sock" >"$SCRATCH/idle.out" 2>&1 <<'EOP'
import socket, sys
path = sys.argv[1]
conns = []
for first in (b"", b'{"cmd":', b'{"cmd":"ping"}\n'):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(path)
    s.sendall(first)
    f = s.makefile("rb")
    if first.endswith(b"\n"):
        f.readline()
    conns.append((s, f))
for s, f in conns:
    line = f.readline().decode(errors="replace")
    print("timed out" if "no complete request within 1 second;" in line else "other: " + line.strip(),
          "then closed" if f.readline() == b"" else "then open")
EOP
n=$(grep -c '^timed out then closed$' "$SCRATCH/idle.out")
[ "$n" -eq 3 ] && ok "idle connections are told and closed after server.idle_timeout" ||
    not_ok "idle connections are told and closed after server.idle_timeout: $(cat "$SCRATCH/idle.out")"
kill -TERM "$ISERVER" 2>/dev/null
wait "$ISERVER" 2>/dev/null
# on the journal (JOURNAL_STREAM names its stderr) the server logs the end
# of a failed execution as an error, as one-shot ndf run reports it
printf 'storage: { path = "%s"; };\nplugins: { cache_dir = "%s"; };\n%s\n' \
    "$SCRATCH/jstate" "$RUN/jcache" \
    'patterns = ( { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; }, { name = "bad"; type = "sequential"; params = { steps = ( { name = "f"; step = "exec"; params = { argv = [ "false" ]; }; } ); }; } );' \
    >"$SCRATCH/journal.conf"
: >"$SCRATCH/jserve.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$SCRATCH/jserve.log")
export JOURNAL_STREAM
start_server "$SCRATCH/journal.conf" "$RUN/j.sock" "$SCRATCH/jserve.log"
JSERVER=$!
unset JOURNAL_STREAM
expect_exit 0 "a succeeding run on the journal" -- "$NDF" ctl --socket "$RUN/j.sock" run nop
expect_exit 1 "a failing run on the journal" -- "$NDF" ctl --socket "$RUN/j.sock" run bad
kill -TERM "$JSERVER" 2>/dev/null
wait "$JSERVER" 2>/dev/null
expect_match "$(cat "$SCRATCH/jserve.log")" '^<3>ndf: error: execution [^ ]+: pattern bad: execution failed in ' \
    "serve logs a failed execution's end as an error (<3>)"
expect_match "$(cat "$SCRATCH/jserve.log")" '^<6>ndf: execution [^ ]+: pattern nop: succeeded in ' \
    "and a succeeded one's as information (<6>)"
# server.max_connections_per_uid counts each uid on its own: a second uid
# (nobody, a member of server.group through a supplementary group) that
# holds its limit is refused more, while the owner still runs work in an
# ordinary slot, not only in its reserve
ugrp=$(getent group | awk -F: '$3 > 0 && $3 < 1000 && $3 != 65534 { print $1; exit }')
if [ "$(id -u)" -ne 0 ]; then
    echo "# skipped the second-uid connection limit test: needs root (runuser to nobody)"
elif ! command -v runuser >/dev/null 2>&1 || [ ! -x /usr/bin/python3 ] || [ -z "$ugrp" ]; then
    echo "# skipped the second-uid connection limit test: needs runuser(1), /usr/bin/python3 and a group"
else
    printf 'storage: { path = "%s"; };\nplugins: { cache_dir = "%s"; };\nserver: { group = "%s"; max_connections_per_uid = 4; idle_timeout = 600; };\n%s\n' \
        "$SCRATCH/ustate" "$RUN/ucache" "$ugrp" \
        'patterns = ( { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; } );' \
        >"$SCRATCH/uid.conf"
    start_server "$SCRATCH/uid.conf" "$RUN/u.sock" "$SCRATCH/userve.log"
    USERVER=$!
    chmod 755 "$SCRATCH" "$RUN"
    mkdir -p "$SCRATCH/u" && chmod 1777 "$SCRATCH/u" # nobody's flag files
    cat >"$SCRATCH/uhold.py" <<'EOP'
import os, socket, sys, time
path, flag, release = sys.argv[1:4]
held = []
for _ in range(10):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
said = {}
for _ in range(600):
    for i, s in enumerate(held):
        if i not in said:
            try:
                d = s.recv(4096, socket.MSG_DONTWAIT)
                said[i] = "closed" if d == b"" else d.decode(errors="replace")
            except BlockingIOError:
                pass
    if len(held) - len(said) <= 4:
        break
    time.sleep(0.05)
print("uid", os.getuid(), "open", len(held) - len(said))
for t in sorted(set(said.values())):
    print("refused:", t.strip())
sys.stdout.flush()
open(flag, "w").close()
for _ in range(1200):
    if os.path.exists(release):
        break
    time.sleep(0.05)
EOP
    chmod 644 "$SCRATCH/uhold.py"
    runuser -u nobody -G "$ugrp" -- /usr/bin/python3 "$SCRATCH/uhold.py" "$RUN/u.sock" \
        "$SCRATCH/u/held" "$SCRATCH/u/release" >"$SCRATCH/uheld.out" 2>&1 &
    UPY=$!
    for i in $(seq 1 1200); do [ -e "$SCRATCH/u/held" ] && break; sleep 0.05; done
    uout=$(cat "$SCRATCH/uheld.out")
    expect_match "$uout" '^uid 65534 open 4$' "10 idle connections of uid 65534: its 4 (max_connections_per_uid) stay open"
    expect_match "$uout" '^refused: .*too many connections from uid 65534 \(at most 4\)' \
        "the rest are refused naming the uid and its limit"
    expect_exit 6 "a fifth client of that uid is refused too" -- \
        runuser -u nobody -G "$ugrp" -- "$NDF" ctl --socket "$RUN/u.sock" ping
    expect_match "$err" "too many connections from uid 65534" "and told why"
    # the owner holds 3 of its own: its 4th, an ordinary slot, runs work,
    # which a limit shared by all uids would have left to the reserve
    # (ping, status and reload only)
    python3 - "$RUN/u.sock" "$SCRATCH/u/oheld" "$SCRATCH/u/release" >/dev/null 2>&1 <<'EOP' &
import os, socket, sys, time
path, flag, release = sys.argv[1:4]
held = [socket.socket(socket.AF_UNIX) for _ in range(3)]
for s in held:
    s.connect(path)
open(flag, "w").close()
for _ in range(1200):
    if os.path.exists(release):
        break
    time.sleep(0.05)
EOP
    OPY=$!
    for i in $(seq 1 1200); do [ -e "$SCRATCH/u/oheld" ] && break; sleep 0.05; done
    expect_exit 0 "the owner, holding 3 connections of its own, still runs work" -- \
        "$NDF" ctl --socket "$RUN/u.sock" run nop
    touch "$SCRATCH/u/release"
    wait "$UPY" "$OPY"
    for i in $(seq 1 200); do
        runuser -u nobody -G "$ugrp" -- "$NDF" ctl --socket "$RUN/u.sock" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    expect_exit 0 "its connections closed, uid 65534 is served again" -- \
        runuser -u nobody -G "$ugrp" -- "$NDF" ctl --socket "$RUN/u.sock" ping
    chmod 700 "$SCRATCH" "$RUN"
    kill -TERM "$USERVER" 2>/dev/null
    wait "$USERVER" 2>/dev/null
fi

# ---- SIGTERM with executions in flight loses no learning ----
before=$(ctl show slow --json | sed -n 's/.*"executions":\([0-9]*\).*/\1/p')
for i in 1 2 3 4; do ctl run slow --async >/dev/null; done
sleep 0.1
kill -TERM "$SERVER"
wait "$SERVER"
rc=$?
[ "$rc" -eq 0 ] && ok "SIGTERM: the server exits 0" || not_ok "SIGTERM: exit $rc"
[ ! -e "$SOCK" ] && ok "the socket is removed" || not_ok "the socket is left behind"
grep -q "not recorded" "$SCRATCH/serve.log" && not_ok "an execution was not recorded" ||
    ok "every execution was recorded before it was answered"
expect_exit 0 "the stored learning can be read" -- "$NDF" show slow --json
after=$(printf '%s\n' "$out" | sed -n 's/.*"executions":\([0-9]*\).*/\1/p')
[ "$after" = $((before + 4)) ] && ok "the 4 executions in flight were recorded ($before -> $after)" \
    || not_ok "executions $before -> $after, wanted $((before + 4))"
grep -E 'error|not saved' "$SCRATCH/serve.log" | grep -v 'reload: ' | sed 's/^/# log: /' | head -5

finish
