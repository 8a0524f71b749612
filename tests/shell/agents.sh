#!/bin/sh
# Agents configured in ndf.conf: a pattern's agent step names one, or the
# context's agent type picks one (also through `ndf delegate`); the step's
# result and the usage figures the agent reports are stored with it, so
# `ndf status` and `status --json` show them after the fact; `ndf config`
# lists the agents without their environment's values; check-config names
# file:line for a bad agent, an unknown agent and an agent type no agent
# serves.
. "$top_srcdir/tests/shell/lib.sh"

FA="$top_srcdir/tests/fixtures/fake_agent.sh"
cat >"$SCRATCH/ndf.conf" <<CONF
storage: { path = "$SCRATCH/state"; };
agents = {
  reviewer = { argv = [ "/bin/sh", "$FA", "json" ]; format = "json";
               result = "/result/text"; usage = "/usage";
               env = { API_KEY = "very-secret-value"; };
               agent_types = [ "reviewer" ]; };
  writer = { argv = [ "/bin/sh", "$FA", "echo" ]; agent_types = [ "writer" ]; };
  slow = { argv = [ "/bin/sh", "$FA", "sleep" ]; timeout = 0.5; };
};
patterns = (
  { name = "review"; type = "sequential"; agent_types = [ "reviewer", "writer" ];
    params = { steps = (
      { name = "ask"; step = "agent"; params = { prompt = "Review \${attr.pr}"; }; },
      { name = "say"; step = "exec"; params = { argv = [ "echo", "got: \${steps.ask.result}" ]; }; }
    ); }; },
  { name = "named"; type = "sequential";
    params = { steps = ( { name = "ask"; step = "agent"; params = { agent = "reviewer"; prompt = "q"; }; } ); }; },
  { name = "stuck"; type = "sequential";
    params = { steps = ( { name = "ask"; step = "agent"; params = { agent = "slow"; prompt = "q"; }; } ); }; }
);
CONF
R="$NDF -c $SCRATCH/ndf.conf"

expect_exit 0 "check-config accepts the agents" -- $R check-config

# --- the agent by the context's agent type; its result in later steps ---
expect_exit 0 "run with agent type reviewer" -- $R run review --agent-type reviewer --attr pr=42
id=$(printf '%s\n' "$err" | sed -n 's/.*(execution \([^)]*\)).*/\1/p' | tail -n 1)
expect_exit 0 "status of that execution" -- $R status "$id"
expect_match "$out" '^    result: answer to: Review 42$' "status shows the agent's result under its step"
expect_match "$out" '^    usage: input_tokens 12, cost_usd 0.5$' "status shows the usage figures"
expect_exit 0 "logs of the next step" -- $R logs "$id" say
expect_match "$out" '^got: answer to: Review 42$' "the next step read \${steps.ask.result}"
expect_exit 0 "status --json" -- $R status "$id" --json
got=$(printf '%s\n' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
n = [x for x in d["nodes"] if x["path"] == "ask"][0]
print(n["result"], n["metrics"]["input_tokens"], n["metrics"]["cost_usd"])')
expect_match "$got" '^answer to: Review 42 12 0.5$' "status --json has the result and metrics"

expect_exit 0 "export review" -- $R export review
got=$(printf '%s\n' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
n = [x for e in d["executions"] for x in e["nodes"] if x["path"] == "ask"][-1]
print(n["result"], n["metrics"]["input_tokens"])')
expect_match "$got" '^answer to: Review 42 12$' "export has the step's result and metrics"

expect_exit 0 "run with agent type writer" -- $R run review --agent-type writer --attr pr=7
id=$(printf '%s\n' "$err" | sed -n 's/.*(execution \([^)]*\)).*/\1/p' | tail -n 1)
expect_exit 0 "status" -- $R status "$id"
expect_match "$out" '^    result: answer to: Review 7$' "the writer agent (text) answered"
if printf '%s\n' "$out" | grep -q 'usage:'; then
    not_ok "a text agent reports no usage figures"
else
    ok "a text agent reports no usage figures"
fi

expect_exit 1 "an agent type no agent serves fails the run" -- \
    $R run review --agent-type tester --attr pr=1
expect_match "$err" "no agent of ndf.conf serves agent type 'tester' \(they serve: reviewer, writer\)" \
    "it says which types are served"
expect_match "$err" "validation failed" "as a validation error (not counted against the pattern)"

# --- delegate: the context's agent type finds the pattern and the agent ---
expect_exit 0 "delegate --agent-type reviewer" -- \
    $R delegate --agent-type reviewer --attr pr=9 --seed 1 --json
expect_match "$(printf '%s\n' "$out" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["attempts"][0]["pattern"])')" \
    '^review$' "delegation chose the pattern of that agent type"

# --- a named agent, and limits from its definition ---
expect_exit 0 "run named" -- $R run named
expect_exit 5 "the slow agent's timeout comes from ndf.conf" -- $R run stuck
expect_match "$err" "did not answer in time" "it says the agent did not answer in time"

# --- ndf config lists the agents, never their env values ---
expect_exit 0 "config" -- $R config
expect_match "$out" '"agents":\{"reviewer":\{"argv":\["/bin/sh",' "config shows the agents"
if printf '%s\n' "$out" | grep -q 'very-secret-value'; then
    not_ok "config does not print an agent's env values"
else
    ok "config does not print an agent's env values"
fi
expect_match "$out" '"env":\["API_KEY"\]' "config names the env variables"

# --- check-config: file:line for what is wrong ---
cat >"$SCRATCH/bad.conf" <<CONF
storage: { path = "$SCRATCH/state2"; };
agents = {
  empty = { argv = [ ]; };
  noprog = { argv = [ "", "x" ]; agent_types = [ "coder" ]; };
  typo = { argv = [ "x" ]; timout = 3; agent_types = [ "coder" ]; };
};
CONF
expect_exit 2 "check-config refuses bad agents" -- $NDF -c "$SCRATCH/bad.conf" check-config
expect_match "$err" "bad.conf:3: agent 'empty': 'argv' is empty" "an empty argv, at its line"
expect_match "$err" "bad.conf:4: agent 'noprog': 'argv\[0\]' \(the program\) is empty" \
    "an empty program, at its line"
expect_match "$err" "bad.conf:5: agent 'typo': unknown key 'timout'" "an unknown key, at its line"
expect_match "$err" "bad.conf:5: agent 'typo': agent type 'coder' is already served by agent 'noprog'" \
    "an agent type served twice"

cat >"$SCRATCH/bad2.conf" <<CONF
storage: { path = "$SCRATCH/state3"; };
agents = { coder = { argv = [ "true" ]; agent_types = [ "coder" ]; }; };
patterns = (
  { name = "p1"; type = "sequential";
    params = { steps = ( { name = "a"; step = "agent"; params = { agent = "nope"; prompt = "q"; }; } ); }; },
  { name = "p2"; type = "sequential"; agent_types = [ "coder", "tester" ];
    params = { steps = ( { name = "a"; step = "agent"; params = { prompt = "q"; }; } ); }; }
);
CONF
expect_exit 2 "check-config refuses an unknown agent and an unserved agent type" -- \
    $NDF -c "$SCRATCH/bad2.conf" check-config
expect_match "$err" "bad2.conf:5: step 'agent': unknown agent 'nope' \(configured: coder\)" \
    "an unknown agent, at the step's line"
expect_match "$err" "bad2.conf:6: pattern 'p2': agent type 'tester' is served by no agent" \
    "an agent type no agent serves, at the pattern's line"

finish
