#!/usr/bin/env bash
# Windows x64 toolchain and dependencies from Debian only (issue 12):
#   1. installs the missing Debian packages (mingw-w64 gcc, wine, dpkg-dev);
#   2. adds a deb-src entry for the Debian archive this machine already uses, once;
#   3. `apt-get source` curl, lua5.4 and luajit into $DEPS/src;
#   4. cross-builds into $DEPS (default build/windows/deps):
#        curl/    static libcurl with Schannel, HTTP and HTTPS only (lib/libcurl.a, include/)
#        lua5.4/  lua.exe, lua54.dll, the headers
#        luajit/  luajit.exe, lua51.dll, the headers
# Each step leaves a stamp in $DEPS/stamps; a step whose stamp exists is skipped, so a
# second run does nothing. Remove a stamp (or $DEPS) to redo that step. Each step prints
# how long it took.
#
#   tools/windows/deps.sh            (from the repository root; `make windows-deps`)
#
# Environment: DEPS, CROSS (default x86_64-w64-mingw32-), JOBS (default nproc).
set -euo pipefail

DEPS=${DEPS:-build/windows/deps}
CROSS=${CROSS:-x86_64-w64-mingw32-}
JOBS=${JOBS:-$(nproc)}
PACKAGES="gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 wine wine64 dpkg-dev make"
SRC_PACKAGES="curl lua5.4 luajit"

mkdir -p "$DEPS/src" "$DEPS/stamps"
DEPS=$(cd "$DEPS" && pwd)
STAMPS=$DEPS/stamps

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "windows-deps: '$*' needs root (no sudo here)" >&2; return 1
  fi
}

since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME CMD...: runs CMD unless NAME's stamp exists; prints the time it took.
step() {
  local name=$1; shift
  if [ -e "$STAMPS/$name" ]; then
    echo "windows-deps: $name: cached"
    return 0
  fi
  local t0 took
  t0=$(date +%s.%N)
  echo "windows-deps: $name ..."
  "$@"
  took=$(since "$t0")
  echo "windows-deps: $name: done in $took s"
  echo "$took" >"$STAMPS/$name"
}

missing_packages() {
  local p missing=
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
  done
  echo "$missing"
}

# Not stamped: the packages may have been removed since; dpkg-query is quick.
install_packages() {
  local missing
  missing=$(missing_packages)
  if [ -z "$missing" ]; then echo "windows-deps: packages: all installed"; return 0; fi
  local t0=$SECONDS
  echo "windows-deps: installing:$missing"
  # apt-get update only when the lists are absent (a fresh container) or install fails.
  # shellcheck disable=SC2086
  if ! DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends $missing; then
    as_root apt-get update
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends $missing
  fi
  echo "windows-deps: packages: done in $((SECONDS - t0)) s"
}

# --- deb-src ------------------------------------------------------------------------------
# A deb-src twin of each enabled Debian entry (deb822 *.sources stanzas with Types: deb, or
# one-line `deb` entries in *.list), for the Debian archives only (URIs containing
# debian.org or the snapshot service), written to one file of ours. Nothing is added when a
# deb-src entry for the archive exists already, so running this twice changes nothing.
SRC_LIST=/etc/apt/sources.list.d/downloadtask-deb-src.sources
SRC_LINES=/etc/apt/sources.list.d/downloadtask-deb-src.list

debian_entries() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    [ "$f" = "$SRC_LIST" ] && continue
    # One stanza a paragraph; keep those with Types containing deb and a Debian URI.
    awk 'BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; enabled = 1
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = $i
          if ($i ~ /^URIs:/) uris = $i
          if ($i ~ /^Enabled:[ \t]*no/) enabled = 0
        }
        if (!enabled || types !~ /[ \t]deb([ \t]|$)/ || uris !~ /debian\.(org|net)/) next
        if (types ~ /deb-src/) next
        out = ""
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^#/) continue
          if (line ~ /^Types:/) line = "Types: deb-src"
          out = out line "\n"
        }
        printf "%s\n", out
      }' "$f"
  done
}

debian_lines() {     # the one-line format (sources.list, *.list)
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    [ "$f" = "$SRC_LINES" ] && continue
    awk '$1 == "deb" && /debian\.(org|net)/ { $1 = "deb-src"; print }' "$f"
  done
}

has_deb_src() {
  grep -rqsE '^(Types:.*deb-src|deb-src[[:space:]])' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}

add_deb_src() {
  if has_deb_src && apt-get source --print-uris curl >/dev/null 2>&1; then
    echo "windows-deps: deb-src: already configured"
    return 0
  fi
  local stanzas oneline
  stanzas=$(debian_entries)
  # one deb-src entry per archive: a one-line entry whose URI a stanza lists already is left
  # out (apt refuses two entries of one archive whose Signed-By differ)
  local uris
  uris=$(printf '%s\n' "$stanzas" | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n' | sed 's:/*$::' | grep . || true)
  oneline=$(debian_lines | awk -v uris="$uris" 'BEGIN { n = split(uris, u, "\n"); for (i = 1; i <= n; i++) seen[u[i]] = 1 }
    { uri = $2; if ($2 ~ /^\[/) uri = $3; sub(/\/+$/, "", uri); if (!(uri in seen)) print }')
  if [ -z "$stanzas" ] && [ -z "$oneline" ]; then
    echo "windows-deps: no Debian archive found in /etc/apt/sources.list{,.d}: add a deb-src entry yourself" >&2
    return 1
  fi
  if [ -n "$stanzas" ]; then
    { echo "# Added by downloadtask's tools/windows/deps.sh: deb-src twins of the Debian entries, for apt-get source."
      printf '%s\n' "$stanzas"; } | as_root tee "$SRC_LIST" >/dev/null
  fi
  if [ -n "$oneline" ]; then
    { echo "# Added by downloadtask's tools/windows/deps.sh"; printf '%s\n' "$oneline"; } \
      | as_root tee "$SRC_LINES" >/dev/null
  fi
  echo "windows-deps: deb-src: added; apt-get update"
  as_root apt-get update
}

# --- sources ------------------------------------------------------------------------------
fetch_sources() {
  # As root, apt-get source warns that the _apt user cannot write here; harmless.
  (cd "$DEPS/src" && apt-get source $SRC_PACKAGES)
}

srcdir() {     # the unpacked tree of Debian source package $1
  local d
  d=$(find "$DEPS/src" -mindepth 1 -maxdepth 1 -type d -name "$1-*" | sort | tail -n 1)
  [ -n "$d" ] || { echo "windows-deps: no unpacked source for $1 in $DEPS/src" >&2; return 1; }
  echo "$d"
}

# --- curl ---------------------------------------------------------------------------------
build_curl() {
  local src b
  src=$(srcdir curl)
  b=$DEPS/curl-build
  rm -rf "$b" "$DEPS/curl"
  mkdir -p "$b"
  # dpkg-source leaves the patched Makefile.am/configure.ac newer than the generated files;
  # make would then try to run automake. Debian's patches that touch them only matter to
  # Debian's own builds (GnuTLS flavour, curl-config paths), so the shipped generated files
  # are used as they are: give them a newer time stamp.
  (cd "$src" && find . \( -name Makefile.in -o -name configure -o -name aclocal.m4 \
      -o -name curl_config.h.in \) -exec touch {} +)
  (cd "$b" && "$src/configure" --host="${CROSS%-}" --prefix="$DEPS/curl" \
      --disable-shared --enable-static --with-schannel --without-openssl --without-gnutls \
      --without-mbedtls --without-wolfssl --without-rustls --without-bearssl \
      --without-zlib --without-brotli --without-zstd --without-libpsl --without-libidn2 \
      --without-nghttp2 --without-ngtcp2 --without-nghttp3 --without-quiche \
      --without-libssh --without-libssh2 --without-librtmp --without-libgsasl \
      --disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet \
      --disable-tftp --disable-pop3 --disable-imap --disable-smtp --disable-gopher \
      --disable-mqtt --disable-smb --disable-ftp --disable-file --disable-manual \
      --disable-docs --disable-ntlm --disable-ntlm-wb --disable-kerberos-auth \
      --disable-negotiate-auth --disable-alt-svc --disable-hsts --disable-pthreads \
      --disable-threaded-resolver --enable-ipv6 --disable-websockets \
      >"$b/configure.log" 2>&1) \
    || { tail -n 30 "$b/configure.log" >&2; return 1; }
  (cd "$b" && make -j"$JOBS" -C lib >"$b/make.log" 2>&1 && make -C lib install >>"$b/make.log" 2>&1 \
      && make -C include install >>"$b/make.log" 2>&1) \
    || { tail -n 30 "$b/make.log" >&2; return 1; }
  # The pkg-config file and curl-config tell what a static user must link.
  (cd "$b" && make install-pkgconfigDATA install-binSCRIPTS >>"$b/make.log" 2>&1) || true
  test -f "$DEPS/curl/lib/libcurl.a"
}

# --- Lua 5.4 ------------------------------------------------------------------------------
build_lua54() {
  local src b
  src=$(srcdir lua5.4)
  b=$DEPS/lua5.4-build
  rm -rf "$b" "$DEPS/lua5.4"
  # Debian's 0001-build-system.patch replaces the makefiles with a libtool build; the
  # upstream makefile's `mingw` target is what Lua's authors ship for Windows. Only that
  # patch is reversed: the others (CVE fixes, extern "C", Debian's search paths, which
  # luaconf.h uses outside _WIN32 only) stay.
  mkdir -p "$b"
  cp -a "$src/." "$b/"
  if [ -f "$b/debian/patches/0001-build-system.patch" ] && [ -d "$b/.pc/0001-build-system.patch" ]; then
    (cd "$b" && patch -R -p1 -s <debian/patches/0001-build-system.patch)
  fi
  # `make mingw` also strips with the host's `strip` (ELF only): call its sub-make with
  # the cross tools instead (the same variables the mingw target sets).
  make -C "$b/src" -j"$JOBS" CC="${CROSS}gcc" \
    "LUA_A=lua54.dll" "LUA_T=lua.exe" "AR=${CROSS}gcc -shared -o" \
    "RANLIB=${CROSS}strip --strip-unneeded" "SYSCFLAGS=-DLUA_BUILD_AS_DLL" "SYSLIBS=" \
    "SYSLDFLAGS=-s" lua.exe >"$b/make.log" 2>&1 || { tail -n 30 "$b/make.log" >&2; return 1; }
  mkdir -p "$DEPS/lua5.4/include"
  cp "$b/src/lua.exe" "$b/src/lua54.dll" "$DEPS/lua5.4/"
  cp "$b/src/lua.h" "$b/src/luaconf.h" "$b/src/lualib.h" "$b/src/lauxlib.h" "$b/src/lua.hpp" \
    "$DEPS/lua5.4/include/"
}

# --- LuaJIT 2.1 ---------------------------------------------------------------------------
build_luajit() {
  local src b
  src=$(srcdir luajit)
  b=$DEPS/luajit-build
  rm -rf "$b" "$DEPS/luajit"
  mkdir -p "$b"
  cp -a "$src/." "$b/"
  make -C "$b" -j"$JOBS" TARGET_SYS=Windows BUILDMODE=dynamic CROSS="$CROSS" HOST_CC=gcc \
    >"$b/make.log" 2>&1 || { tail -n 30 "$b/make.log" >&2; return 1; }
  mkdir -p "$DEPS/luajit/include"
  cp "$b/src/luajit.exe" "$b/src/lua51.dll" "$DEPS/luajit/"
  cp "$b/src/lua.h" "$b/src/luaconf.h" "$b/src/lualib.h" "$b/src/lauxlib.h" "$b/src/luajit.h" \
    "$b/src/lua.hpp" "$DEPS/luajit/include/"
}

t_all=$(date +%s.%N)
install_packages
step deb-src add_deb_src
step sources fetch_sources
step curl build_curl
step lua5.4 build_lua54
step luajit build_luajit
echo "windows-deps: all in $(since "$t_all") s ($DEPS)"
