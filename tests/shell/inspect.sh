#!/bin/sh
# `ndf inspect` on the loader's fixture plugins: the verdict and exit code
# for a valid plugin, every invalid one, a non-ELF file and a missing file;
# the schema in text and JSON; and `ndf plugins` over a mixed directory.
. "$top_srcdir/tests/shell/lib.sh"
FX=${NDF_FIXTURE_DIR:?run through make check}
# The private plugin cache goes to scratch space, never to the user's.
NDF_RUNTIME_DIR=$SCRATCH/run
export NDF_RUNTIME_DIR

# Copies with known modes: the build tree may be group-writable (umask 002),
# which the loader rightly refuses.
P=$SCRATCH/plugins
mkdir -m 700 "$P"
for f in good bad_major newer_minor short_descriptor no_descriptor init_fails dup_name \
         dup_step bad_schema compat_v1_0; do
    cp "$FX/$f.so" "$P/$f.so" && chmod 644 "$P/$f.so"
done
printf 'not a plugin\n' >"$P/notelf.so"
chmod 644 "$P/notelf.so"

# --- a valid plugin ---
expect_exit 0 "inspect a valid plugin exits 0" -- "$NDF" inspect "$P/good.so"
expect_match "$out" '^verdict: compatible$' "the verdict is compatible"
expect_match "$out" '^name: good$' "the descriptor's name"
expect_match "$out" '^version: 1\.2\.3$' "the descriptor's version"
expect_match "$out" '^abi: 1\.[0-9]+ \(descriptor [0-9]+ bytes' "the ABI it was built for"
expect_match "$out" '^sha256: [0-9a-f]{64}$' "its SHA-256"
expect_match "$out" '^pattern type good_trivial: a pattern type that does nothing$' "the pattern type"
expect_match "$out" '^step good_echo: logs its text$' "the step"
expect_match "$out" '^    items \(list of group, required\): what to do$' "a required list parameter"
expect_match "$out" '^      weight \(number, default 0\.5, range 0\.\.1\): relative weight$' \
    "a nested parameter with default and range"
expect_match "$out" '^    retries \(int, default 0, range 0\.\.100\)' "an int parameter"
expect_match "$out" '^    tags \(list of string\): labels$' "a list's element type"

expect_exit 0 "inspect --json exits 0" -- "$NDF" inspect --json "$P/good.so"
json_checks "$out" \
    'j["valid"] is True and j["verdict"] == "compatible"' "JSON: valid and verdict" \
    'j["name"] == "good" and j["abi"]["major"] == 1' "JSON: descriptor" \
    'j["host_abi"]["major"] == 1 and len(j["sha256"]) == 64' "JSON: host ABI and hash" \
    '[t["name"] for t in j["pattern_types"]] == ["good_trivial"]' "JSON: pattern types" \
    '[s["name"] for s in j["steps"]] == ["good_echo"]' "JSON: steps" \
    'j["pattern_types"][0]["params"][0]["children"][1] == {"name": "weight", "type": "number", "required": False, "default": "0.5", "range": {"min": 0, "max": 1}, "element_type": None, "open": False, "doc": "relative weight", "children": []}' \
    "JSON: a nested parameter, every field" \
    'j["steps"][0]["params"][1]["element_type"] == "string"' "JSON: element type"
expect_exit 0 "an option after the FILE is accepted (inspect FILE --json)" -- "$NDF" inspect "$P/good.so" --json
json_checks "$out" 'j["valid"] is True and j["name"] == "good"' "inspect FILE --json: the same JSON"
expect_exit 0 "inspect FILE --conformance --json" -- "$NDF" inspect "$P/good.so" --conformance --json
json_checks "$out" 'j["verdict"] == "pass"' "inspect FILE --conformance --json: JSON"

expect_exit 0 "inspect the compatibility fixture" -- "$NDF" inspect "$P/compat_v1_0.so"
expect_match "$out" '^step compat_echo' "it provides compat_echo"

# --- every invalid fixture: exit 7 and the reason on stderr ---
check_invalid() {
    expect_exit 7 "$1 is refused with exit 7" -- "$NDF" inspect "$P/$1.so"
    expect_match "$err" "$P/$1\\.so: .*$2" "$1: the reason names the file and says why"
}
check_invalid bad_major 'built for plugin ABI 2\.0, this ndf supports 1\.[0-9]+'
check_invalid newer_minor 'built for ABI 1\.[0-9]+, this ndf supports 1\.[0-9]+ .*rebuild the plugin against the installed SDK or upgrade ndf'
check_invalid short_descriptor 'smaller than the [0-9]+ bytes of an ABI'
check_invalid no_descriptor 'does not export ndf_plugin_descriptor; was it built with NDF_PLUGIN_DEFINE\(\)\?'
check_invalid init_fails 'init failed .*the frobnicator device is missing'
check_invalid bad_schema "default of parameter 'count' \\(many\\) is not a valid"
check_invalid notelf 'is not an ELF shared object'
expect_match "$out" '^verdict: refused$' "a refused plugin's verdict"

expect_exit 7 "inspect --json of an invalid plugin exits 7" -- "$NDF" inspect --json "$P/bad_major.so"
json_checks "$out" 'j["valid"] is False and "ABI 2.0" in j["verdict"] and j["abi"]["major"] == 2' \
    "JSON: the refusal and the ABI read"

# Ownership and mode are part of the verdict.
cp "$P/good.so" "$SCRATCH/open.so" && chmod 666 "$SCRATCH/open.so"
expect_exit 7 "a world-writable plugin is refused" -- "$NDF" inspect "$SCRATCH/open.so"
expect_match "$err" 'world-writable' "the reason says world-writable"
ln -s "$P/good.so" "$SCRATCH/link.so"
expect_exit 7 "a symbolic link is refused" -- "$NDF" inspect "$SCRATCH/link.so"
expect_match "$err" 'symbolic link' "the reason says symbolic link"

# --- missing file, bad command lines ---
expect_exit 3 "a missing file exits 3" -- "$NDF" inspect "$SCRATCH/nope.so"
expect_match "$err" "nope\\.so: no such file" "the missing file is named"
expect_exit 2 "inspect without a file exits 2" -- "$NDF" inspect
expect_exit 2 "inspect with two files exits 2" -- "$NDF" inspect "$P/good.so" "$P/good.so"
expect_exit 2 "inspect rejects an unknown option" -- "$NDF" inspect --bogus "$P/good.so"
expect_exit 0 "inspect --help exits 0" -- "$NDF" inspect --help
expect_match "$out" '^Usage: ndf inspect' "inspect --help prints usage"

# --- ndf plugins over a mixed directory ---
D=$SCRATCH/dir
mkdir -m 700 "$D"
cp -p "$P/good.so" "$P/bad_major.so" "$P/notelf.so" "$P/compat_v1_0.so" "$D/"
cp -p "$P/dup_step.so" "$D/z_dup_step.so"
expect_exit 0 "plugins exits 0 despite refusals" -- env NDF_PLUGIN_PATH="$D" "$NDF" -c /dev/null plugins
expect_match "$out" '^good 1\.2\.3 \(ABI 1\.[0-9]+\)$' "the good plugin is listed"
expect_match "$out" "^  file: $D/good\\.so$" "with its file"
expect_match "$out" '^  pattern types: good_trivial$' "with its pattern types"
expect_match "$out" '^  steps: good_echo$' "with its steps"
expect_match "$out" '^compat_v1_0 1\.0\.0 \(ABI 1\.0\)$' "the compatibility fixture is listed"
expect_match "$out" "^refused: $D/bad_major\\.so: built for plugin ABI 2\\.0" "a refused one with its reason"
expect_match "$out" "^refused: $D/z_dup_step\\.so: step 'good_echo' is already registered by plugin 'good'" \
    "a step taken by an earlier plugin"
expect_match "$err" 'ndf: plugins: 3 of 5 plugin files refused' "the refusals are counted on stderr"
expect_exit 0 "plugins --json exits 0" -- env NDF_PLUGIN_PATH="$D" "$NDF" -c /dev/null plugins --json
json_checks "$out" \
    'j["loaded"] == 2 and j["refused"] == 3 and len(j["plugins"]) == 5' "JSON: every file tried" \
    '[p["name"] for p in j["plugins"] if p["loaded"]] == ["compat_v1_0", "good"]' \
    "JSON: loaded in name order" \
    'j["plugins"][2]["steps"] == ["good_echo"] and j["plugins"][0]["reason"].startswith("'"$D"'/bad_major.so: ")' \
    "JSON: provides and reasons"
expect_exit 0 "plugins --help exits 0" -- "$NDF" plugins --help
expect_exit 2 "plugins rejects an unknown option" -- "$NDF" plugins --bogus
finish
