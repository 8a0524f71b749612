#!/bin/sh
# The plugin scanner's verdicts with a PostgreSQL store: they are kept in
# the state directory (plugins.verdict_dir), not beside an SQLite file that
# this backend never makes, so a second command does not scan again.
. "$top_srcdir/tests/shell/lib.sh"
. "$top_srcdir/tests/shell/pglib.sh"
S=$SCRATCH
FIX=${NDF_FIXTURE_DIR:?run through make check}
mkdir -m 700 "$S/plugins" "$S/run"
cp "$FIX/good.so" "$S/plugins/"
export NDF_PLUGIN_PATH="$NDF_PLUGIN_PATH:$S/plugins"
export NDF_RUNTIME_DIR="$S/run"
unset NDF_STATE_DIR
export XDG_STATE_HOME="$S/xdg"
VD=$S/xdg/ndf/plugin-verdicts

pg_start
pg_sql postgres "CREATE DATABASE ndfscan" >/dev/null
CONF=$S/ndf.conf
cat >"$CONF" <<CONF
storage: { path = "$S/state"; backend = "postgresql"; conninfo = "host=$PG_DIR user=postgres dbname=ndfscan"; };
patterns = (
  { name = "nop"; type = "sequential"; params = { steps = ( { name = "n"; step = "noop"; } ); }; }
);
CONF
R="$NDF -c $CONF"

expect_exit 0 "run on PostgreSQL" -- $R run nop
expect_match "$(pg_sql ndfscan "SELECT count(*) FROM executions")" '^1$' "the run is in PostgreSQL"
h=$(sha256sum "$S/plugins/good.so" | cut -c1-64)
[ -f "$VD/$h" ] && ok "the scan's verdict is kept in the state directory" \
    || not_ok "no verdict in $VD: $(ls "$VD" 2>&1)"
[ ! -e "$S/state/plugin-verdicts" ] && ok "not beside the (unused) storage path" \
    || not_ok "verdicts were kept under storage.path"
expect_exit 0 "plugins --json" -- $R plugins --json
expect_match "$out" '"file":"[^"]*/good.so"[^}]*"loaded":true[^}]*"scanned":"cached"' \
    "the next command reuses the verdict"
expect_match "$out" '"file":"[^"]*/sequential.so"[^}]*"scanned":"cached"' \
    "so do the built-in plugins"
expect_exit 0 "a second run" -- $R run nop
expect_match "$(pg_sql ndfscan "SELECT count(*) FROM executions")" '^2$' "both runs are in PostgreSQL"
finish
