rockspec_format = "3.0"
package = "downloadtask"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- replaced by the published repository's address on release
}
description = {
  summary = "The mini-program downloadFile/DownloadTask API for Lua, on libcurl, off the Lua thread",
  detailed = [[
downloadtask downloads files over HTTP(S) with libcurl on a native thread of its own and
delivers headers, progress and results to Lua listeners inside poll/run/await, with
coroutine-friendly waiting. A destination file is either the complete new file or untouched.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  -- Only the library is looked up: Debian keeps curl/curl.h under the multiarch include
  -- directory, which the compiler searches by itself but LuaRocks' header check does not.
  CURL = {
    library = "curl",
  },
  OPENSSL = { -- libcrypto, for the sha256 option
    library = "crypto",
  },
}
-- The Makefile builds (`make rock`, then `make rock-install`): its objects go to
-- build/rock/<Lua include dir>/, so the clone keeps no object or module from a rock build
-- and builds for different Lua versions never mix. It also installs the lua-language-server
-- stubs as downloadtask/types.lua (`---@meta downloadtask`: editors read them, nothing
-- requires them).
build = {
  type = "make",
  build_target = "rock",
  build_variables = {
    CC = "$(CC)",
    ROCK_CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    CURL_INCDIR = "$(CURL_INCDIR)",
    CURL_LIBDIR = "$(CURL_LIBDIR)",
    OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
  },
  install_target = "rock-install",
  install_variables = {
    LUA_INCDIR = "$(LUA_INCDIR)",
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
}
