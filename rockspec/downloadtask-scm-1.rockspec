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
build = {
  type = "builtin",
  modules = {
    downloadtask = {
      sources = { "src/module.c", "src/task.c", "src/dispatch.c", "src/engine.c", "src/files.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "crypto", "pthread" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
  },
}
