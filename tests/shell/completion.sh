#!/bin/sh
# The bash completion (contrib/bash-completion/ndf): bash sources it without
# error, and it completes commands, a command's options, and pattern names
# from the configuration given with -c, before and after the command.
. "$top_srcdir/tests/shell/lib.sh"
if ! command -v bash >/dev/null 2>&1; then
    not_ok "bash is not installed"
    finish
    exit
fi
COMP=$top_srcdir/contrib/bash-completion/ndf
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<CONF
storage: { path = "$SCRATCH/state"; };
patterns = (
  { name = "nightly_backup"; type = "sequential"; params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "nightly_report"; type = "sequential"; params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "deploy"; type = "sequential"; params = { steps = ( { name = "s"; step = "noop"; } ); }; }
);
CONF
# c WORD...: the completions of the last word, on one line
cat >"$SCRATCH/complete.bash" <<BASH
set -u
source "$COMP" || exit 9
complete -p ndf >/dev/null || exit 8
COMP_WORDS=("\$@")
COMP_CWORD=\$((\${#COMP_WORDS[@]} - 1))
COMPREPLY=()
_ndf
echo "\${COMPREPLY[*]}"
BASH
c() { bash "$SCRATCH/complete.bash" "$@"; }

expect_exit 0 "bash sources the completion without error" -- bash -c "set -eu; source '$COMP'; complete -p ndf"
expect_match "$out" '^complete -F _ndf ndf$' "and it registers for ndf"
expect_exit 0 "commands" -- c "$NDF" pl
expect_match "$out" '^plugins plan$' "complete from ndf --help"
expect_exit 0 "a pattern name" -- c "$NDF" -c "$CONF" run nightly_
expect_match "$out" '^nightly_backup nightly_report$' "completes from the configuration's patterns"
expect_exit 0 "a pattern name with -c after the command" -- c "$NDF" plan -c "$CONF" --domain x dep
expect_match "$out" '^deploy$' "skipping the options and their values"
expect_exit 0 "a PATTERN option value" -- c "$NDF" -c "$CONF" run deploy --fallback nightly_r
expect_match "$out" '^nightly_report$' "completes a pattern for --fallback"
expect_exit 0 "no pattern where the command takes none" -- c "$NDF" -c "$CONF" run deploy nightly
expect_match "$out" '^$' "a second operand gets nothing"
expect_exit 0 "a command's options" -- c "$NDF" run --dry
expect_match "$out" '^--dry-run$' "from the command's --help"
expect_exit 0 "global options after the command" -- c "$NDF" list --qu
expect_match "$out" '^--quiet$' "are offered too"
expect_exit 0 "a pattern after ctl run" -- c "$NDF" -c "$CONF" ctl run nightly_
expect_match "$out" '^nightly_backup nightly_report$' "ctl run completes pattern names"
expect_exit 0 "a pattern after ctl --socket S run" -- c "$NDF" -c "$CONF" ctl --socket /x.sock run dep
expect_match "$out" '^deploy$' "skipping ctl's own option and its value"
expect_exit 0 "--format's values" -- c "$NDF" -c "$CONF" graph deploy --format ""
expect_match "$out" '^dot text$' "from the usage's dot|text"
expect_exit 0 "--format's values, a prefix" -- c "$NDF" graph deploy --format d
expect_match "$out" '^dot$' "completes the prefix"
finish
