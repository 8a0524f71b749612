#!/bin/sh
# The plugin author's kit on the build tree: `ndf test-step` (outcomes and
# exit codes, parameters inline and from a file, context options, --undo,
# --json, errors), `ndf new-plugin` (the files it writes and what it
# refuses) and `ndf inspect --conformance` (verdicts on the built-in plugins
# and on fixtures that break a rule).  The same tools against the installed
# SDK are in install.sh.
. "$top_srcdir/tests/shell/lib.sh"
P=$NDF_PLUGIN_PATH
export NDF_RUNTIME_DIR=$SCRATCH/run

# ---- ndf test-step ----
expect_exit 0 "test-step runs a step and exits 0" -- \
    "$NDF" test-step "$P/example.so" hello --attr user=ada --params '{"name": "${attr.user}"}'
expect_match "$out" '^step hello \(example\): COMPLETED in [0-9.]+s$' "it prints the state"
expect_match "$out" '^Hello, ada!$' "and the step's log"
printf '{ "argv": ["sh", "-c", "echo out; echo err >&2; exit 4"] }\n' >"$SCRATCH/p.json"
expect_exit 1 "a failing step exits 1" -- "$NDF" test-step "$P/steps.so" exec --params "$SCRATCH/p.json"
expect_match "$out" '^message: exited with status 4$' "with the step's message"
expect_match "$out" '^--- stderr ---$' "and its stderr"
expect_exit 1 "a step's 'not found' is its failure, not exit 3" -- \
    "$NDF" test-step "$P/steps.so" fail --params '{"status": "not found"}'
expect_exit 5 "a step past --timeout exits 5" -- \
    "$NDF" test-step "$P/steps.so" sleep --params '{"seconds": 30}' --timeout 0.2
expect_match "$out" 'TIMED_OUT' "and is TIMED_OUT"
expect_exit 10 "a cancelled step exits 10" -- \
    "$NDF" test-step "$P/steps.so" fail --params '{"status": "cancelled"}'
expect_exit 0 "--undo runs the undo after the run" -- "$NDF" test-step "$P/steps.so" exec \
    --params '{"argv": ["true"], "undo": ["echo", "undone"]}' --undo --json
expect_match "$out" '"state":"ROLLED_BACK".*"stdout":"undone\\n"' "the record shows it, as JSON"
expect_exit 0 "context options reach the step" -- "$NDF" test-step "$P/steps.so" exec \
    --params '{"argv": ["sh", "-c", "echo $NDF_DOMAIN/$NDF_ATTR_SIZE"]}' --domain web --attr size=3
expect_match "$out" '^web/3$' "as NDF_* variables"
expect_exit 3 "an unknown step exits 3" -- "$NDF" test-step "$P/steps.so" nope
expect_match "$err" "has no step named 'nope' \(steps: exec sleep log fail noop pattern\)" "naming the steps it has"
expect_exit 2 "parameters against the schema exit 2" -- \
    "$NDF" test-step "$P/steps.so" exec --params '{"argv": 5}'
expect_match "$err" "'argv' must be a list" "saying what is wrong"
expect_exit 2 "bad JSON exits 2" -- "$NDF" test-step "$P/steps.so" exec --params '{"argv": '
expect_match "$err" 'not valid JSON' "saying so"
expect_exit 2 "a missing params file exits 2" -- "$NDF" test-step "$P/steps.so" exec --params "$SCRATCH/none.json"
expect_exit 7 "a file that is no plugin exits 7" -- "$NDF" test-step "$top_srcdir/README.md" x
expect_exit 2 "one operand is a usage error" -- "$NDF" test-step "$P/steps.so"
expect_exit 0 "the agent step's result and metrics" -- "$NDF" test-step "$P/agent.so" agent \
    --params "{\"argv\": [\"/bin/sh\", \"$top_srcdir/tests/fixtures/fake_agent.sh\", \"json\"], \"prompt\": \"q\", \"format\": \"json\", \"result\": \"/result/text\", \"usage\": \"/usage\"}"
expect_match "$out" '^result: answer to: q$' "the result is printed"
expect_match "$out" '^metric cost_usd = 0.5$' "and the metrics"

# ---- ndf inspect --conformance ----
for f in example steps agent sequential parallel meta; do
    expect_exit 0 "the built-in $f plugin conforms" -- "$NDF" inspect --conformance "$P/$f.so"
done
expect_match "$out" '^ok +fini: leaves no thread behind' "a verdict per check"
"$NDF" inspect --conformance "$P/example.so" >"$SCRATCH/ex.out" 2>&1
expect_match "$(cat "$SCRATCH/ex.out")" '^ok +load: example .*ABI 1\.0 recorded' \
    "the template records ABI 1.0 (NDF_SDK_MIN_MINOR 0)"
expect_match "$(cat "$SCRATCH/ex.out")" '^ok +step hello: binds with its schema.s defaults' "its step binds"
expect_match "$(cat "$SCRATCH/ex.out")" '^skipped +pattern type once: create with defaults: it needs step' \
    "a type with required parameters is skipped, saying why"
expect_match "$(cat "$SCRATCH/ex.out")" '^ok +reload: a second copy loads' "a second copy loads beside the first"
"$NDF" inspect --conformance "$P/steps.so" >"$SCRATCH/st.out" 2>&1
expect_match "$(cat "$SCRATCH/st.out")" "^ok +step exec: refuses its schema's defaults with a message" \
    "create() refusing defaults with a validation message conforms"
expect_match "$(cat "$SCRATCH/st.out")" '^ok +step exec: declares undo' "undo presence is reported"
expect_exit 7 "a plugin that breaks the rules fails (exit 7)" -- \
    "$NDF" inspect --conformance "$NDF_FIXTURE_DIR/nonconforming.so"
expect_match "$out" '^warn +writable data: .*mutable globals: runs \(8 bytes\)' "its mutable global is named"
expect_match "$out" '^fail +fini: [0-9]+ thread\(s\) still run after fini' "the thread fini left is caught"
expect_match "$out" "^fail +step nc_broken: .*'I/O error'.*cannot open /nonexistent/state" \
    "a create() failing with a non-validation status fails"
expect_match "$out" '^conformance: FAIL \(8 check\(s\), 2 failed, 1 warning\(s\)\)$' "and the summary counts"
expect_exit 7 "--json gives the same verdicts" -- \
    "$NDF" inspect --conformance --json "$NDF_FIXTURE_DIR/nonconforming.so"
expect_match "$out" '"failed":2,"warnings":1,"verdict":"fail"\}$' "as one JSON object"
expect_exit 7 "a file that does not load fails the load check" -- \
    "$NDF" inspect --conformance "$NDF_FIXTURE_DIR/bad_major.so"
expect_match "$out" '^fail +load: ' "saying why"
expect_exit 2 "plugins does not take --conformance" -- "$NDF" plugins --conformance

# ---- NDF_SDK_MIN_MINOR: newer members warn unless read after a check ----
cat >"$SCRATCH/mm.c" <<'MM'
#define NDF_SDK_MIN_MINOR 0
#include <ndf/sdk.h>
void direct(const ndf_host *host, ndf_exec *n);
void direct(const ndf_host *host, ndf_exec *n) { host->node_cancel(n); }
void checked(const ndf_host *host, ndf_exec *n);
void checked(const ndf_host *host, ndf_exec *n)
{
    void (*cancel)(ndf_exec *) = NDF_HOST_GET(host, node_cancel);
    if (cancel && NDF_HOST_HAS(host, node_set_timeout))
        cancel(n);
}
static int init(const ndf_host *host, ndf_registrar *reg, void **state)
{
    (void)host, (void)reg;
    *state = 0;
    return NDF_OK;
}
NDF_PLUGIN_DEFINE("mm", "1", "MIT", "min minor", init, 0);
MM
expect_exit 0 "a plugin with NDF_SDK_MIN_MINOR 0 compiles" -- \
    ${CC:-cc} -Wall -Wextra -I"$top_srcdir/sdk" -fPIC -shared -o "$SCRATCH/mm.so" "$SCRATCH/mm.c"
expect_match "$err" "mm.c:4:.*node_cancel. is deprecated: added in SDK 1.2, newer than NDF_SDK_MIN_MINOR" \
    "reading a 1.2 member directly warns"
[ "$(printf '%s\n' "$err" | grep -c 'deprecated')" -eq 1 ] && ok "NDF_HOST_GET and NDF_HOST_HAS do not warn" \
    || not_ok "NDF_HOST_GET/HAS warned too"
chmod 644 "$SCRATCH/mm.so"
expect_exit 0 "inspect loads it" -- "$NDF" inspect "$SCRATCH/mm.so"
expect_match "$out" '^abi: 1\.0 ' "and it records ABI 1.0"
sed 's/^#define NDF_SDK_MIN_MINOR 0$/#define NDF_SDK_MIN_MINOR -1/' "$SCRATCH/mm.c" >"$SCRATCH/mneg.c"
expect_exit 1 "a negative NDF_SDK_MIN_MINOR does not compile (it would record minor 65535)" -- \
    ${CC:-cc} -I"$top_srcdir/sdk" -fPIC -shared -o "$SCRATCH/mneg.so" "$SCRATCH/mneg.c"
expect_match "$err" 'NDF_SDK_MIN_MINOR must be 0 or more' "saying so"

# ---- test-step --timeout gives up on a step that ignores cancellation ----
cat >"$SCRATCH/deaf.c" <<'DEAF'
#include <unistd.h>
#include <ndf/sdk.h>
static const ndf_param_spec none[] = {NDF_PARAM_END};
static int deaf(const ndf_host *h, ndf_exec *n, const ndf_value *p, void *i)
{
    (void)h, (void)n, (void)p, (void)i;
    for (;;)
        pause();
    return NDF_OK;
}
static const ndf_step_def d = {.size = sizeof(ndf_step_def), .name = "deaf", .description = "x",
                               .params = none, .run = deaf};
static int init(const ndf_host *host, ndf_registrar *reg, void **state)
{
    *state = 0;
    return host->register_step(reg, &d);
}
NDF_PLUGIN_DEFINE("deaf", "1", "MIT", "a step deaf to cancellation", init, 0);
DEAF
${CC:-cc} -I"$top_srcdir/sdk" -fPIC -shared -o "$SCRATCH/deaf.so" "$SCRATCH/deaf.c" &&
    chmod 644 "$SCRATCH/deaf.so"
expect_exit 5 "test-step --timeout exits 5 even when the step ignores cancellation" -- \
    timeout 60 "$NDF" test-step "$SCRATCH/deaf.so" deaf --timeout 0.2
expect_match "$err" "step 'deaf' has not returned .*giving up" "saying it gave up on it"

# ---- ndf new-plugin (building it needs the installed SDK: install.sh) ----
cd "$SCRATCH" || exit 1
expect_exit 0 "new-plugin writes a plugin directory" -- "$NDF" new-plugin my-thing --step fetch \
    --pattern-type race
expect_match "$out" '^next: cd my-thing && make' "and says what to do next"
for f in my-thing.c Makefile README.md my-thing.conf; do
    [ -s "my-thing/$f" ] && ok "my-thing/$f written" || not_ok "my-thing/$f missing"
done
src=$(cat my-thing/my-thing.c)
expect_match "$src" 'NDF_PLUGIN_DEFINE\("my-thing"' "the descriptor names the plugin"
expect_match "$src" '\.name = "fetch",' "the step is stubbed with designated initializers"
expect_match "$src" 'static const ndf_param_spec step_fetch_params\[\]' "with its schema"
expect_match "$src" 'host->task_run\(node' "the pattern type runs tasks with the host's helper"
expect_match "$src" '^#define NDF_SDK_MIN_MINOR 2$' "and records the minor it needs"
expect_match "$(cat my-thing/Makefile)" 'test-step ./\$\(PLUGIN\) fetch' "make check runs ndf test-step"
readme=$(cat my-thing/README.md)
[ "${readme#*make install*check-config}" != "$readme" ] &&
    ok "the README checks the configuration after make install (it needs the plugin)" ||
    not_ok "the README runs check-config before the plugin is installed"
expect_exit 0 "the test configuration names them" -- grep -q 'type = "race"' my-thing/my-thing.conf
expect_exit 0 "only steps: the minor stays 0" -- "$NDF" new-plugin solo "$SCRATCH/solo"
expect_match "$(cat solo/solo.c)" '^#define NDF_SDK_MIN_MINOR 0$' "a plugin of steps only loads on 1.0 hosts"
expect_match "$(cat solo/solo.c)" '\.name = "solo",' "the default step is named after the plugin"
expect_exit 2 "an existing, non-empty directory is refused" -- "$NDF" new-plugin my-thing
expect_match "$err" 'exists and is not an empty directory' "saying so"
expect_exit 2 "a bad plugin name is refused" -- "$NDF" new-plugin 'Bad/Name'
expect_exit 2 "a plugin name starting with '-' is refused (NAME.c would be a cc option)" -- \
    "$NDF" new-plugin -- -x
[ ! -e ./-x ] && ok "and nothing is written" || not_ok "new-plugin -- -x wrote ./-x"
: >"$SCRATCH/plainfile"
expect_exit 2 "a DIR that is an existing file is a usage error" -- \
    "$NDF" new-plugin ok "$SCRATCH/plainfile"
expect_match "$err" 'plainfile: exists and is not an empty directory' "saying so, not ENOTDIR"
expect_exit 2 "a bad step name is refused" -- "$NDF" new-plugin ok --step 'no-dash'
expect_exit 2 "a name given twice is refused" -- "$NDF" new-plugin ok --step a --pattern-type a
[ ! -e ok ] && ok "nothing is written when refused" || not_ok "a refused new-plugin wrote ok/"
cd "$top_builddir" || exit 1

finish
