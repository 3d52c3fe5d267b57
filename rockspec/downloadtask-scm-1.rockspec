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
  platforms = {
    unix = {
      OPENSSL = { -- libcrypto, for the sha256 option (Windows uses BCrypt)
        library = "crypto",
      },
    },
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
  -- Per platform (src/platform.h): macOS links a bundle whose Lua symbols the host
  -- provides. Windows (mingw-w64 only: the engine uses pthreads, which mingw's winpthread
  -- gives) compiles with LuaRocks' builtin backend against libcurl, SHA-256 from BCrypt; a
  -- static libcurl (libcurl.a) needs CFLAGS="-DCURL_STATICLIB" on the luarocks command line.
  platforms = {
    macosx = {
      build_variables = {
        LIBFLAG = "-bundle -undefined dynamic_lookup",
      },
    },
    windows = {
      type = "builtin",
      modules = {
        downloadtask = {
          sources = {
            "src/module.c", "src/task.c", "src/options.c", "src/httpdate.c", "src/await.c",
            "src/dispatch.c", "src/engine.c", "src/transfer.c",
            "src/body.c", "src/segments.c", "src/files.c", "src/ranges.c",
            "src/record.c", "src/headers.c", "src/pace.c", "src/queue.c",
            "src/notify_none.c", "src/platform_win.c",
          },
          incdirs = { "$(CURL_INCDIR)" },
          libdirs = { "$(CURL_LIBDIR)" },
          libraries = { "curl", "ws2_32", "bcrypt", "crypt32", "advapi32", "pthread" },
        },
      },
      install = {
        lua = { ["downloadtask.types"] = "lua/downloadtask/types.lua" },
      },
    },
  },
}
