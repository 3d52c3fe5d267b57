#!/usr/bin/env bash
# Runs the specs with busted and then kills every test server they started,
# whatever way busted ended (pass, fail, crash, Ctrl-C, SIGTERM to this script).
#
#   spec/support/run-specs.sh [busted args...]      (from the repository root)
#
# DT_TEST_LUA picks the interpreter (default lua5.4) and DT_TEST_CPATH the
# module under test (a cpath template such as build/5.3/?.so, given to busted
# as --cpath and exported for the specs' child Luas; default: build/<v>/?.so of
# the interpreter's own version, v = 5.4 ... 5.1 or luajit). `make test-<version>`
# sets both.
#
# spec/support/servers.lua appends each server's pid to $DT_TEST_PIDFILE and
# keeps its files under $DT_TEST_TMPDIR; both point into one temp dir that is
# removed at the end. Exits with busted's status (130/143 when interrupted).
set -u

LUA=${DT_TEST_LUA:-lua5.4}
BUSTED=${BUSTED:-/usr/bin/busted}
if [ -z "${DT_TEST_CPATH:-}" ]; then
  v=$("$LUA" -e 'print(jit and "luajit" or _VERSION:match("%d+%.%d+"))') || exit 1
  export DT_TEST_CPATH="build/$v/?.so"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dt-specs.XXXXXX") || exit 1
export DT_TEST_PIDFILE="$tmp/pids"
export DT_TEST_TMPDIR="$tmp"
# Bodies of downloads without filePath (the module's default tempDir is $TMPDIR)
# go away with the run dir instead of piling up in /tmp.
mkdir -p "$tmp/tmp" && export TMPDIR="$tmp/tmp"
: >"$DT_TEST_PIDFILE"
child=

# A pid from the file is only signalled while it still is one of our servers:
# after a normal stop the number may belong to an unrelated process by now.
ours() {
  local cmd
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  case $cmd in
  *nginx*|*faultserver.lua*) return 0 ;;
  *apache2*|*lighttpd*|*caddy*|*h2o*|*nghttpd*|*squid*|*tinyproxy*|*microsocks*|*danted*|*gunicorn*) return 0 ;; # make interop
  esac
  return 1
}
alive() {
  [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null
}
# nginx's master leads its own process group (it calls setsid): signal the group too.
signal() {
  local sig=$1 pid=$2
  ours "$pid" || return 0
  kill "-$sig" -- "-$pid" 2>/dev/null
  kill "-$sig" "$pid" 2>/dev/null
}

cleanup() {
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  local pids pid i
  pids=$(sort -un "$DT_TEST_PIDFILE" 2>/dev/null)
  for pid in $pids; do signal TERM "$pid"; done
  for i in $(seq 100); do
    local left=
    for pid in $pids; do if ours "$pid" && alive "$pid"; then left=1; fi; done
    [ -z "$left" ] && break
    sleep 0.02
  done
  for pid in $pids; do if alive "$pid"; then signal KILL "$pid"; fi; done
  rm -rf "$tmp"
}

trap 'rc=$?; trap - EXIT INT TERM; cleanup; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# In the background so a signal to this script runs the trap at once instead of
# after busted finishes; `wait` returns early when a trapped signal arrives.
"$LUA" "$BUSTED" "--cpath=$DT_TEST_CPATH" "$@" &
child=$!
wait "$child"
rc=$?
child=
exit "$rc"
