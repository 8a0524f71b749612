#!/bin/sh
# The plugin scanner: a build whose init crashes, calls exit() or hangs, or
# whose fini crashes, is quarantined by its content hash after a scan in a
# child process, never loaded into the host, named with its path at every
# verbosity, and listed by `ndf plugins`; verdicts are kept by hash (and
# forgotten when the file's mode changes); a hot install under `ndf serve`
# does not take the server down nor fail a healthy client.
. "$top_srcdir/tests/shell/lib.sh"
S=$SCRATCH
FIX=${NDF_FIXTURE_DIR:?run through make check}
CONF=$S/ndf.conf
mkdir -m 700 "$S/plugins" "$S/hot" "$S/run"
for f in good scan_init_segv scan_init_exit scan_init_hang scan_fini_segv init_fails; do
    cp "$FIX/$f.so" "$S/plugins/"
done
BUILTIN=$NDF_PLUGIN_PATH
export NDF_PLUGIN_PATH="$NDF_PLUGIN_PATH:$S/plugins"
export NDF_RUNTIME_DIR="$S/run"
# Verdicts go to the default state directory, not beside the store.
unset NDF_STATE_DIR
export XDG_STATE_HOME="$S/xdg"
cat >"$CONF" <<CONF
storage: { path = "$S/state"; };
# The hang fixture never returns, so the limit only sets how long its scan
# takes; a short one quarantined good builds on a loaded machine.
plugins: { scan_timeout = 5.0; };
patterns = (
  { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; }
);
CONF
R="$NDF -c $CONF"
VD=$S/xdg/ndf/plugin-verdicts
# Under AddressSanitizer its own handler takes the SIGSEGV and exits 1 (so
# the scanner says the init "ended" it rather than "crashed" it).
CRASH='signal 11 \(SIGSEGV\)|exit status 1 '

expect_exit 0 "ndf plugins survives plugins whose init or fini kill their process" -- $R plugins
expect_match "$out" "^good 1\.2\.3" "the good plugin is loaded"
expect_match "$out" "^steps " "and so are the plugins after the quarantined ones"
expect_match "$out" "refused: $S/plugins/scan_init_segv.so: quarantined: its init (crashed|ended) the plugin scanner \(pid [0-9]+\) with ($CRASH)" \
    "an init that crashes: quarantined, named by path, with the signal"
expect_match "$out" "refused: $S/plugins/scan_init_exit.so: quarantined: its init ended the plugin scanner \(pid [0-9]+\) with exit status 0 \(a plugin must never exit the process\)" \
    "an init that calls exit(): quarantined, with the status"
expect_match "$out" "refused: $S/plugins/scan_init_hang.so: quarantined: its init did not return within 5 s in the plugin scanner" \
    "an init that hangs: quarantined after the timeout"
expect_match "$out" "refused: $S/plugins/scan_fini_segv.so: quarantined: its fini (crashed|ended) the plugin scanner \(pid [0-9]+\) with ($CRASH)" \
    "a fini that crashes: quarantined"
expect_match "$out" "so this build \(sha256 [0-9a-f]{16}\) is never loaded: fix the plugin and install a new build, or remove the file \(to scan this build again, delete $VD/[0-9a-f]{64}\)" \
    "the message says what to do"
expect_match "$out" "refused: $S/plugins/init_fails.so: init failed \([a-z ]+\): " \
    "an init that fails cleanly is refused with its own message, not quarantined"
expect_match "$err" "ndf: plugins: 5 of 12 plugin files refused \(4 quarantined\)" "the summary counts the quarantined"
[ ! -e "$S/state" ] && ok "the store's directory is not made by ndf plugins" \
    || not_ok "the store's directory is not made by ndf plugins"
n=$(ls "$VD" 2>/dev/null | wc -l)
[ "$n" -ge 11 ] && ok "verdicts are kept in \$XDG_STATE_HOME/ndf/plugin-verdicts without a store ($n)" \
    || not_ok "verdicts are kept in \$XDG_STATE_HOME/ndf/plugin-verdicts without a store ($n files)"

# Every verbosity names the quarantined files.
expect_exit 0 "ndf -q list" -- $R -q list
for f in scan_init_segv scan_init_exit scan_init_hang scan_fini_segv; do
    expect_match "$err" "^ndf: list: error: plugin $S/plugins/$f.so: quarantined: " "-q still names $f.so"
done
expect_exit 0 "ndf run runs beside quarantined plugins" -- $R run nop
n=$(ls "$VD" | wc -l)
[ "$n" -ge 11 ] && ok "verdicts are kept by hash ($n)" \
    || not_ok "verdicts are kept by hash ($n files)"
[ ! -e "$VD/$(sha256sum "$S/plugins/init_fails.so" | cut -c1-64)" ] && ok "a clean refusal is not kept" \
    || not_ok "a clean refusal is not kept"
perm=$(stat -c %a "$VD")
[ "$perm" = 700 ] && ok "the verdict directory is private" || not_ok "the verdict directory is private ($perm)"
perm=$(stat -c %a "$S/xdg/ndf")
[ "$perm" = 700 ] && ok "its parents are made private" || not_ok "its parents are made private ($perm)"

# Cached: no second scan (the hanging one would cost the timeout again).
expect_exit 0 "ndf plugins --json" -- $R plugins --json
for f in good scan_init_hang scan_init_segv sequential; do
    expect_match "$out" "\"file\":\"[^\"]*/$f.so\"[^}]*\"scanned\":\"cached\"" "$f: its verdict is reused"
done
expect_match "$out" "\"file\":\"[^\"]*/init_fails.so\"[^}]*\"scanned\":\"now\"" "a clean refusal is scanned again"
expect_match "$out" "\"file\":\"[^\"]*/scan_init_exit.so\"[^}]*\"loaded\":false,\"reason\":\"[^\"]*\",\"quarantined\":true" \
    "--json marks the quarantined"
expect_match "$out" '"refused":5,"quarantined":4' "--json counts them"

# A changed mode (or owner) is another key: scanned again.
chmod 0500 "$S/plugins/scan_init_segv.so"
expect_exit 0 "after chmod" -- $R plugins --json
expect_match "$out" "\"file\":\"[^\"]*/scan_init_segv.so\"[^}]*\"quarantined\":true,\"scanned\":\"now\"" \
    "a mode change invalidates the verdict"
# Deleting the verdict scans again, as the message says.
h=$(sha256sum "$S/plugins/scan_fini_segv.so" | cut -c1-64)
rm "$VD/$h"
expect_exit 0 "after deleting a verdict" -- $R plugins --json
expect_match "$out" "\"file\":\"[^\"]*/scan_fini_segv.so\"[^}]*\"quarantined\":true,\"scanned\":\"now\"" \
    "a deleted verdict is scanned again"
# A verdict file that does not parse is no verdict.
printf 'ok garbage\n' >"$VD/$h"
expect_exit 0 "after corrupting a verdict" -- $R plugins --json
expect_match "$out" "\"file\":\"[^\"]*/scan_fini_segv.so\"[^}]*\"quarantined\":true,\"scanned\":\"now\"" \
    "a verdict that does not parse is scanned again"

# A verdict file is trusted only when the user alone wrote it: a planted
# "ok" for a build whose init crashes would get that build into ndf.
hs=$(sha256sum "$S/plugins/scan_init_segv.so" | cut -c1-64)
plant_ok() { # mode [owner]
    sed -n '1s/^quarantined /ok /p' "$VD/$hs" >"$S/planted"
    rm -f "$VD/$hs"
    cp "$S/planted" "$VD/$hs"
    chmod "$1" "$VD/$hs"
    [ -z "${2:-}" ] || chown "$2" "$VD/$hs"
}
planted() { # what
    expect_exit 0 "a planted ok verdict ($1): ndf run survives" -- $R run nop
    expect_match "$err" "plugin $S/plugins/scan_init_segv.so: quarantined: its init" "a planted ok verdict ($1): scanned again, quarantined"
    expect_match "$err" "plugin scan verdict $VD/$hs ignored \\($2\\); scanning again" "a planted ok verdict ($1): the warning says why"
    expect_match "$(head -c 12 "$VD/$hs")" '^quarantined ' "a planted ok verdict ($1): replaced by the scan's"
}
plant_ok 0666
planted "writable by others" "writable by group or others"
plant_ok 0620
planted "writable by the group" "writable by group or others"
if [ "$(id -u)" = 0 ]; then
    plant_ok 0600 12345
    planted "another owner" "not owned by the user running ndf"
else
    ok "a planted verdict of another owner # SKIP needs root to chown"
fi
sed -n '1s/^quarantined /ok /p' "$VD/$hs" >"$S/planted"
rm -f "$VD/$hs"
ln -s "$S/planted" "$VD/$hs"
planted "a symbolic link" "a symbolic link"
[ ! -L "$VD/$hs" ] && ok "the link is replaced by a verdict file" || not_ok "the link is still there"
# A verdict that cannot be written (here a directory in its place, as a
# full disk would) is one warning, and the command works.
rm -f "$VD/$hs"
mkdir "$VD/$hs"
expect_exit 0 "an unwritable verdict: ndf run survives" -- $R run nop
expect_match "$err" "plugin scan verdict $VD/$hs ignored \\(not a regular file\\)" "a directory is no verdict"
w=$(printf '%s\n' "$err" | grep -c "plugin scan verdicts are not kept, so every command scans each plugin again: cannot replace $VD/$hs")
[ "$w" -eq 1 ] && ok "a verdict that cannot be written: one warning" || not_ok "a verdict that cannot be written: $w warnings: $err"
rmdir "$VD/$hs"

# Temporary files of a writer killed mid-write are swept once stale.
touch -d '2 minutes ago' "$VD/.$hs.tmp-0000dead"
touch "$VD/.$hs.tmp-0000beef" "$VD/.$hs.tmp-0000old"
touch -d '2 minutes ago' "$VD/.$hs.tmp-0000old" "$VD/.keep"
expect_exit 0 "with stale temporary verdicts" -- $R plugins --json
[ ! -e "$VD/.$hs.tmp-0000dead" ] && ok "a stale temporary verdict is swept" || not_ok "a stale temporary verdict is left"
[ -e "$VD/.$hs.tmp-0000beef" ] && ok "a fresh one (a write in progress) is left" || not_ok "a fresh temporary verdict was swept"
[ -e "$VD/.$hs.tmp-0000old" ] && [ -e "$VD/.keep" ] && ok "names that are no temporary verdict are left" \
    || not_ok "a file that is no temporary verdict was swept"
rm -f "$VD/.$hs.tmp-0000beef" "$VD/.$hs.tmp-0000old" "$VD/.keep"

# The way to scan again names the directory in use, not the one the
# verdict was written in: a copied directory, and a verdict of an earlier
# ndf that kept the path in its text.
cp -a "$VD" "$S/vcopy"
cat >"$S/copy.conf" <<CONF
storage: { path = "$S/state"; };
plugins: { scan_timeout = 5.0; verdict_dir = "$S/vcopy"; };
CONF
expect_exit 0 "a copied verdict directory" -- $NDF -c "$S/copy.conf" plugins --json
expect_match "$out" "\"file\":\"[^\"]*/scan_init_segv.so\"[^}]*to scan this build again, delete $S/vcopy/$hs\\)\"[^}]*\"scanned\":\"cached\"" \
    "a copied verdict directory: the message names the copy"
printf '%s (to scan this build again, delete /gone/%s)\n' "$(sed -n 2p "$S/vcopy/$hs")" "$hs" >"$S/line2"
{ sed -n 1p "$S/vcopy/$hs"; cat "$S/line2"; } >"$S/vnew" && mv "$S/vnew" "$S/vcopy/$hs" && chmod 600 "$S/vcopy/$hs"
expect_exit 0 "an old verdict that kept its path" -- $NDF -c "$S/copy.conf" plugins --json
expect_match "$out" "\"file\":\"[^\"]*/scan_init_segv.so\"[^}]*or remove the file \\(to scan this build again, delete $S/vcopy/$hs\\)\"[^}]*\"scanned\":\"cached\"" \
    "an old verdict that kept its path: the message names the directory in use, once"
case $out in
*/gone/*) not_ok "an old verdict that kept its path: the stale path is shown" ;;
*) ok "an old verdict that kept its path: the stale path is not shown" ;;
esac

# Scanning off: the good plugins load in process as before (the bad ones
# are moved away first: they would take this ndf down).
mkdir -m 700 "$S/good"
cp "$FIX/good.so" "$S/good/"
cat >"$S/noscan.conf" <<CONF
storage: { path = "$S/state2"; };
plugins: { dirs = [ "$S/good" ]; scan = false; };
CONF
rm -f "$VD/$(sha256sum "$S/good/good.so" | cut -c1-64)"
expect_exit 0 "plugins.scan = false" -- env NDF_PLUGIN_PATH= $NDF -c "$S/noscan.conf" plugins --json
expect_match "$out" '"file":"[^"]*/good.so"[^}]*"loaded":true[^}]*"scanned":null' "loads unscanned"
[ ! -e "$S/state2/plugin-verdicts" ] && [ ! -e "$S/xdg/ndf/plugin-verdicts/$(sha256sum "$S/good/good.so" | cut -c1-64)" ] &&
    ok "and keeps no verdict" || not_ok "and keeps no verdict"

# plugins.verdict_dir: made with its parents, relative to the file; a
# directory someone else could write (a symbolic link, group- or
# world-writable, another owner) keeps nothing, with one warning, and the
# command still works (scanning every time).
vconf() { # verdict_dir
    cat >"$S/v.conf" <<CONF
storage: { path = "$S/state4"; };
plugins: { dirs = [ "$S/good" ]; verdict_dir = "$1"; };
CONF
}
VR="env NDF_PLUGIN_PATH= $NDF -c $S/v.conf"
vconf "vd/deep"
expect_exit 0 "plugins.verdict_dir" -- $VR plugins --json
expect_match "$out" '"file":"[^"]*/good.so"[^}]*"loaded":true[^}]*"scanned":"now"' "scanned once"
[ -f "$S/vd/deep/$(sha256sum "$S/good/good.so" | cut -c1-64)" ] && ok "the verdict is in verdict_dir, relative to the file" \
    || not_ok "the verdict is in verdict_dir, relative to the file"
expect_match "$(stat -c %a "$S/vd") $(stat -c %a "$S/vd/deep")" '^700 700$' "verdict_dir and its parents are made 0700"
expect_exit 0 "plugins.verdict_dir, again" -- $VR plugins --json
expect_match "$out" '"file":"[^"]*/good.so"[^}]*"scanned":"cached"' "then cached"
expect_exit 0 "ndf config shows it" -- $VR config --json
expect_match "$out" "\"verdict_dir\":\"$S/vd/deep\"" "ndf config --json shows plugins.verdict_dir"

hostile() { # what
    expect_exit 0 "verdict_dir $1: the command works" -- $VR plugins --json
    expect_match "$out" '"file":"[^"]*/good.so"[^}]*"loaded":true[^}]*"scanned":"now"' "verdict_dir $1: scanned"
    w=$(printf '%s\n' "$err" | grep -c "plugin scan verdicts are not kept")
    [ "$w" -eq 1 ] && ok "verdict_dir $1: one warning" || not_ok "verdict_dir $1: $w warnings: $err"
    expect_match "$err" "$2" "verdict_dir $1: the warning says why"
    expect_exit 0 "verdict_dir $1, again" -- $VR plugins --json
    expect_match "$out" '"file":"[^"]*/good.so"[^}]*"scanned":"now"' "verdict_dir $1: nothing was kept"
}
mkdir -m 700 "$S/vreal"
ln -s "$S/vreal" "$S/vlink"
vconf "vlink"
hostile "a symbolic link" "$S/vlink is not a directory \(a symbolic link is not accepted\)"
[ -z "$(ls "$S/vreal")" ] && ok "nothing was written through the link" || not_ok "a verdict was written through the link"
mkdir -m 700 "$S/vgroup" && chmod 770 "$S/vgroup"
vconf "vgroup"
hostile "group-writable" "$S/vgroup is owned by uid [0-9]+ with mode 0770; it must be owned by the user running ndf"
mkdir -m 700 "$S/vworld" && chmod 1777 "$S/vworld"
vconf "vworld"
hostile "world-writable" "mode 1777"
mkdir -m 700 "$S/vparent" && chmod 777 "$S/vparent"
vconf "vparent/v"
hostile "under a world-writable parent" "its parent directory $S/vparent is world-writable"
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
    mkdir -m 700 "$S/vother" && chown nobody "$S/vother"
    vconf "vother"
    hostile "owned by another user" "$S/vother is owned by uid $(id -u nobody) with mode 0700"
else
    ok "# SKIP another owner needs root (running as uid $(id -u))"
fi

# ndf inspect scans too.
expect_exit 7 "ndf inspect on a quarantined build" -- $R inspect "$S/plugins/scan_init_exit.so"
expect_match "$err" "ndf: inspect: $S/plugins/scan_init_exit.so: quarantined: its init ended the plugin scanner" \
    "inspect names the file and the reason"
expect_exit 0 "ndf inspect on a good build" -- $R inspect "$S/plugins/good.so"
expect_exit 2 "the scanner's mode by hand" -- $NDF __scan-plugin "$S/plugins/good.so"
expect_match "$err" "__scan-plugin is the plugin scanner's mode" "is refused with a word"

# Hot install under the server: the server lives, a healthy client never
# fails, the server log names the file.
cat >"$S/serve.conf" <<CONF
storage: { path = "$S/state3"; };
plugins: { dirs = [ "$S/hot" ]; scan_timeout = 5.0; };
executor: { threads = 2; };
patterns = (
  { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; }
);
CONF
RS="env NDF_PLUGIN_PATH=$BUILTIN:$S/hot $NDF -c $S/serve.conf"
$RS serve 2>"$S/serve.log" &
SERVER=$!
for i in $(seq 1 100); do
    $RS ctl ping >/dev/null 2>&1 && break
    sleep 0.05
done
: >"$S/fails"
(
    while [ ! -e "$S/stop" ]; do
        $RS ctl run nop >/dev/null 2>&1 || echo x >>"$S/fails"
    done
) &
CLIENT=$!
for f in scan_init_segv scan_init_exit scan_init_hang scan_fini_segv; do
    cp "$FIX/$f.so" "$S/hot/.$f.tmp"
    mv "$S/hot/.$f.tmp" "$S/hot/$f.so"
    $RS ctl reload >"$S/reload.out" 2>&1
    expect_exit 0 "serve: alive after a hot install of $f.so" -- $RS ctl ping
done
touch "$S/stop"
wait $CLIENT
nf=$(wc -l <"$S/fails")
[ "$nf" -eq 0 ] && ok "serve: the healthy client saw no failure" || not_ok "serve: the healthy client saw $nf failures"
for f in scan_init_segv scan_init_exit scan_init_hang scan_fini_segv; do
    expect_match "$(cat "$S/serve.log")" "plugin $S/hot/$f.so: quarantined: " "serve: the log names $f.so"
done
expect_exit 0 "serve: ctl plugins" -- $RS ctl plugins
expect_match "$out" "refused: $S/hot/scan_init_hang.so: quarantined" "serve: ctl plugins lists the quarantined"
kids=$(cat /proc/$SERVER/task/*/children 2>/dev/null | tr -s ' \n' ' ')
expect_match "[${kids# }]" '^\[ ?\]$' "serve: no scanner left under the server"
kill -TERM $SERVER
wait $SERVER
rc=$?
[ "$rc" -eq 0 ] && ok "serve: exits 0" || not_ok "serve: exits 0 (got $rc)"
left=$(ps -eo args | grep -c "[_]_scan-plugin $S" || true)
[ "$left" -eq 0 ] && ok "no scanner process left" || not_ok "no scanner process left ($left)"

# ---- an init that leaves a setsid'd daemon in the scanner ----
# The daemon left the scanner's process group and holds its report pipe:
# the scan ends with the scanner (not at its timeout), and the daemon is
# found by the scanner's token and killed.
mkdir -m 700 "$S/dplugins"
cp "$FIX/scan_init_daemon.so" "$S/dplugins/"
rm -rf "$VD"
export NDF_TEST_SCAN_PIDFILE="$S/scan_daemon.pid"
expect_exit 0 "an init that leaves a daemon: ndf plugins" -- env NDF_PLUGIN_PATH="$BUILTIN:$S/dplugins" $R plugins
unset NDF_TEST_SCAN_PIDFILE
# a scan that waited for the daemon's end of the pipe would have ended at
# scan_timeout and quarantined the build as hung
expect_match "$out" "^scan_init_daemon " "its build is loaded: the scan ended with the scanner"
case "$out" in
*"scan_init_daemon.so: quarantined"*) not_ok "the build was quarantined: $out" ;;
*) ok "the build is not quarantined" ;;
esac
dpid=$(cat "$S/scan_daemon.pid" 2>/dev/null)
i=0
while [ -n "$dpid" ] && [ -r "/proc/$dpid/stat" ] && ! awk '{exit !($3 == "Z")}' "/proc/$dpid/stat" && [ $i -lt 100 ]; do
    sleep 0.05
    i=$((i + 1))
done
if [ -z "$dpid" ]; then
    not_ok "the init's daemon wrote no pid (the test proves nothing)"
elif [ -r "/proc/$dpid/stat" ] && ! awk '{exit !($3 == "Z")}' "/proc/$dpid/stat"; then
    not_ok "the init's daemon $dpid outlived its scan"
    kill -KILL "$dpid" 2>/dev/null
else
    ok "the init's daemon ($dpid) did not outlive its scan"
fi
finish
