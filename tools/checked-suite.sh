#!/usr/bin/env bash
# Runs busted specs with every Lua process that loads downloadtask checked by a sanitizer or
# by valgrind, and fails when a single report appears anywhere.
#
#   tools/checked-suite.sh asan|tsan|valgrind BUILD_DIR [busted args, spec files...]
#
# (from the repository root; the Makefile's asan, tsan and valgrind targets call it)
#
# How the checked module and runtime reach every process that loads the module:
# - spec/support/run-specs.sh runs busted with $DT_TEST_LUA and gives it $DT_TEST_CPATH as
#   --cpath; the specs that start a child Lua (`-e`) use the same two (servers.lua's S.LUA and
#   S.MODULE_CPATH). DT_TEST_LUA is BUILD_DIR/bin/lua5.4, a script that runs
#   BUILD_DIR/luahost (tools/luahost.c, linked with the sanitizer's runtime) for asan and tsan,
#   or `valgrind lua5.4`; DT_TEST_CPATH is BUILD_DIR/?.so (asan, tsan) or the top-level
#   build (valgrind checks the build that ships).
# - The sanitizer's runtime is linked into the Lua host, not LD_PRELOADed: the processes
#   the specs start (bash, nginx, gcc, curl, luarocks) run unchecked and undisturbed. The
#   fault server ($DT_TEST_SERVER_LUA) never loads the module: it runs on plain lua5.4.
# - No suppression files. The Makefile leaves out, with --filter-out, the one or two specs a
#   tool cannot judge (it says which and why).
# - Every report goes to a file under BUILD_DIR/logs (ASan/UBSan/TSan log_path, valgrind
#   --log-file): after the run, any report there fails it, also one from a child process whose
#   spec did not notice.
set -u
usage="usage: tools/checked-suite.sh asan|tsan|valgrind BUILD_DIR [busted args...]"
kind=${1:?$usage}
build=${2:?$usage}
shift 2
repo=$(pwd)
[ -x "$repo/spec/support/run-specs.sh" ] || { echo "run me from the repository root" >&2; exit 2; }
mkdir -p "$build" && build=$(cd "$build" && pwd) || exit 2
[ -n "$build" ] && [ "$build" != / ] || exit 2
logs="$build/logs"
rm -rf "$logs" "$build/bin"
mkdir -p "$logs" "$build/bin"
chmod 1777 "$logs" # a spec runs one child as nobody (setpriv): its report must land here too

case $kind in
asan)
  # argv[0] stays "lua5.4" (bash's exec -a): it is arg[0] of `lua5.4 -e`, and a string of
  # another length moves the collector's steps, which specs about finalizers notice.
  runner="exec -a lua5.4 \"$build/luahost\""
  cpath="$build/?.so"
  # LSan at the exit of every checked process; one log file per process that reported.
  export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:log_path=$logs/asan"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
  ;;
tsan)
  runner="exec -a lua5.4 \"$build/luahost\""
  cpath="$build/?.so"
  # halt_on_error=0: every race of a run in the log, not only the first.
  # die_after_fork=0: the fork() specs' children only start an engine of their own.
  export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:die_after_fork=0:log_path=$logs/tsan"
  ;;
valgrind)
  command -v valgrind >/dev/null || { echo "make valgrind needs valgrind: ./dev deps (or apt-get install valgrind)" >&2; exit 2; }
  # valgrind finds `lua5.4` in PATH (/usr/bin first) and keeps argv[0] "lua5.4", as above.
  runner="PATH=\"/usr/bin:\$PATH\" exec valgrind --quiet --tool=memcheck --leak-check=full \
--show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=99 \
--num-callers=40 --log-file=\"$logs/vg.%p.log\" lua5.4"
  cpath="$repo/?.so"
  ;;
*) echo "$usage" >&2; exit 2 ;;
esac

cat >"$build/bin/lua5.4" <<EOF
#!/bin/bash
# Written by tools/checked-suite.sh: the Lua under test for \`make $kind\`.
# valgrind keeps its own files under \$TMPDIR: a child run as another user (setpriv) may not
# write the run's TMPDIR.
[ -w "\${TMPDIR:-/tmp}" ] || export TMPDIR=/tmp
$runner "\$@"
EOF
chmod +x "$build/bin/lua5.4"
export DT_TEST_LUA="$build/bin/lua5.4"
export DT_TEST_CPATH="$cpath"
export DT_TEST_SERVER_LUA=lua5.4
# which checker runs the suite, for the few specs that count work done per unit of time
export DT_TEST_CHECKER="$kind"

start=$(date +%s)
spec/support/run-specs.sh "$@"
rc=$?
echo "checked-suite: $kind: busted exited with $rc after $(($(date +%s) - start)) s"

# valgrind --quiet writes a log for every process it ran, empty unless it found an error
# (or a definite leak); its "Warning: ..." lines about the system are not reports.
bad=()
for f in "$logs"/*; do
  [ -e "$f" ] || continue
  if [ "$kind" = valgrind ] && ! grep -vE "^==[0-9]+== +(Warning: |$)" "$f" | grep -q .; then
    continue
  fi
  bad+=("$f")
done
if ((${#bad[@]})); then
  echo "checked-suite: $kind: ${#bad[@]} process(es) reported problems:" >&2
  for f in "${bad[@]}"; do
    echo "==== $f" >&2
    head -c 20000 "$f" >&2
  done
  exit 1
fi
if [ "$rc" != 0 ]; then
  echo "checked-suite: $kind: the specs failed" >&2
  exit "$rc"
fi
echo "checked-suite: $kind: passed, no reports"
