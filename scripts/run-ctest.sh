#!/usr/bin/env bash
# Runs ctest in a build tree and then prints each test's closing cmocka line(s), so a
# log shows what ran even when everything passed (ctest --output-on-failure shows a
# test's output only when it fails).
#
#   FL_TEST_CPUS=N scripts/run-ctest.sh <build dir> [ctest arguments...]   (N: nproc)
set -uo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 <build dir> [ctest arguments...]" >&2
  exit 2
fi
dir=$1
shift

# Cores: every test that computes takes one (RESOURCE_GROUPS cpus:1, CMakeLists.txt),
# so at most FL_TEST_CPUS of them run at once; the tests that mostly wait (on a broker,
# on a killed program) take a slot of `waits` instead and run beside them, as many.
cpus=${FL_TEST_CPUS:-$(nproc)}
if ! [[ $cpus =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: FL_TEST_CPUS '$cpus' is not a positive whole number" >&2
  exit 2
fi
spec="$(cd "$dir" && pwd)/ctest-cpus.json"
printf '{"version": {"major": 1, "minor": 0}, "local": [{"cpus": [{"id": "0", "slots": %d}],
  "waits": [{"id": "0", "slots": %d}]}]}\n' "$cpus" "$cpus" >"$spec"

echo "== ctest in $dir ${*:-} (FL_TEST_TIMEOUT_SCALE=${FL_TEST_TIMEOUT_SCALE:-1}, $cpus cores)"
start=$(date +%s)
ctest --test-dir "$dir" --output-on-failure --resource-spec-file "$spec" -j $((cpus * 2)) "$@"
rc=$?
end=$(date +%s)

log="$dir/Testing/Temporary/LastTest.log"
if [[ -f "$log" ]]; then
  echo "== per-test results in $dir:"
  # A test's block runs from '"<name>" start time:' to '<end of output>'; keep the
  # cmocka summary lines in it ([  PASSED  ] n test(s). / [  FAILED  ] n test(s)...). ctest's
  # verdict lines above are the authority on pass/fail; this is what ran. Tests that
  # are not cmocka programs show their last line of output.
  awk '
    /^Command: ""$/ { notrun = 1 }
    /^"[^"]+" start time:/ { name = $1; gsub(/"/, "", name); summary = ""; last = "" }
    /^Call Stack / { stack = 1 }
    /[^ \t\r]/ && !stack && !/^(Output:|-+)\r?$/ && !/^<end of output>/ {
      last = $0; sub(/^[ \t]+/, "", last)
    }
    /^\[  (PASSED|FAILED)  \] [0-9]+ test/ {
      line = $0; sub(/[ \t\r]+$/, "", line)
      summary = summary (summary == "" ? "" : " ") line
    }
    /^<end of output>/ {
      if (notrun) summary = "(not run)"
      else if (summary == "") summary = last
      last = ""; stack = 0
      printf "  %-34s %s\n", name, summary
      notrun = 0
    }
  ' "$log"
fi
echo "== ctest in $dir: $([[ $rc -eq 0 ]] && echo passed || echo "FAILED (exit $rc)") in $((end - start)) s"
exit $rc
