#!/bin/sh
# The reference's API as ndf's commands: `list --domain` ordered like
# find_patterns_by_domain, a meta pattern's complexity_threshold as a gate
# on explicit runs (and --force), "already exists" with its own exit code.
. "$top_srcdir/tests/shell/lib.sh"
CONF=$SCRATCH/ndf.conf
cat >"$CONF" <<CONF
executor: { threads = 2; default_timeout = 30.0; };
storage: { path = "$SCRATCH/state"; };
confidence: { threshold = 0.0; min_samples = 1; };
patterns = (
  { name = "zeta"; type = "sequential"; domains = [ "web*" ];
    params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "alpha"; type = "sequential"; domains = [ "web" ];
    params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "mid"; type = "sequential"; domains = [ "web" ];
    params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "down"; type = "sequential"; domains = [ "web" ];
    params = { steps = ( { name = "s"; step = "fail"; } ); }; },
  { name = "other"; type = "sequential"; domains = [ "db" ];
    params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "m"; type = "meta"; params = { complexity_threshold = 5;
    phases = ( { name = "p"; patterns = [ "alpha" ]; } ); }; }
);
CONF
R="$NDF -c $CONF"

# ---- list --domain: most confident first, ties by name ----
expect_exit 0 "zeta succeeds" -- $R run zeta
expect_exit 0 "zeta succeeds again" -- $R run zeta
expect_exit 1 "down fails" -- $R run down
expect_exit 0 "list --domain web" -- $R list --domain web
names=$(printf '%s\n' "$out" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')
# m has no domains: it serves every domain, web too.
expect_match "$names" '^zeta alpha m mid down $' \
    "list --domain orders by confidence, then name (got: $names)"
expect_exit 0 "list without --domain" -- $R list
names=$(printf '%s\n' "$out" | awk 'NR > 1 { print $1 }' | tr '\n' ' ')
expect_match "$names" '^alpha down m mid other zeta $' "plain list stays by name (got: $names)"
expect_exit 0 "list --domain web --json" -- $R list --domain web --json
names=$(printf '%s\n' "$out" | grep -o '"name":"[a-z]*"' | tr '\n' ' ')
expect_match "$names" '^"name":"zeta" "name":"alpha" "name":"m" "name":"mid" "name":"down" $' \
    "the JSON form has the same order"

# ---- the type's gate: meta's complexity_threshold ----
expect_exit 2 "a context below complexity_threshold is refused" -- \
    $R run m --attr complexity=2
expect_match "$err" "^ndf: pattern 'm': not started: the context's complexity 2 is below complexity_threshold 5 \(use --force to run it anyway\)$" \
    "the refusal names both numbers and the way round it"
expect_exit 0 "runs did not change" -- $R runs m
[ -z "$out" ] && ok "a refused run leaves no execution" || not_ok "a refused run was recorded: $out"
expect_exit 2 "an unreadable complexity is refused" -- $R run m --attr complexity=huge
expect_match "$err" "complexity is not a number" "and says what it wanted"
expect_exit 0 "--force runs it anyway" -- $R run m --attr complexity=2 --force
expect_exit 0 "at the threshold it runs" -- $R run m --attr complexity=medium
expect_exit 0 "without a complexity it runs" -- $R run m

# ---- "already exists" has its own exit code ----
cat >"$SCRATCH/dup.conf" <<CONF
storage: { path = "$SCRATCH/state"; };
patterns = (
  { name = "twice"; type = "sequential"; params = { steps = ( { name = "s"; step = "noop"; } ); }; },
  { name = "twice"; type = "sequential"; params = { steps = ( { name = "s"; step = "noop"; } ); }; }
);
CONF
expect_exit 12 "a pattern defined twice exits 12" -- $NDF -c "$SCRATCH/dup.conf" run twice
expect_match "$err" "dup\.conf:4: duplicate pattern 'twice' \(first defined at .*dup\.conf:3\)" \
    "and names both places"

finish
