-- Downloads onto files: a new file, a replaced file, UTF-8 names, tempFilePath, non-2xx.
-- Plain Lua (see harness.lua); runs under wine and on Linux.
local H = dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "harness.lua")
local dt = require "downloadtask"

H.test("downloads a file to filePath", function()
  local dest = H.path("small.txt")
  local res, kind = H.download(dt, { url = H.url("small.txt"), filePath = dest })
  H.eq(kind, "success")
  H.eq(res.statusCode, 200, "statusCode")
  H.eq(res.errMsg, "downloadFile:ok")
  H.eq(res.filePath, dest, "filePath")
  H.eq(res.tempFilePath, nil, "tempFilePath")
  H.eq(res.dataLength, #H.SMALL_TXT, "dataLength")
  H.eq(H.readfile(dest), H.SMALL_TXT, "content")
  H.expect_file("small.txt", #H.SMALL_TXT)
end)

H.test("a 1 MiB binary body arrives byte for byte", function()
  local dest = H.path("1m.bin")
  local res = H.download(dt, { url = H.url("1m.bin"), filePath = dest })
  H.eq(res.statusCode, 200, "statusCode")
  H.eq(res.dataLength, 1048576, "dataLength")
  -- A text-mode write (no O_BINARY on Windows) would turn every \n into \r\n here.
  H.truthy(H.readfile(dest) == H.pattern(0, 1048576), "the file differs from the served pattern")
  H.expect_file("1m.bin", 1048576)
end)

H.test("an existing destination is replaced", function()
  local dest = H.path("replaced.bin")
  H.writefile(dest, ("old content "):rep(10000))
  local res = H.download(dt, { url = H.url("1k.bin"), filePath = dest })
  H.eq(res.statusCode, 200, "statusCode")
  H.truthy(H.readfile(dest) == H.pattern(0, 1024), "the destination was not replaced")
  -- and once more onto the file the first download made
  res = H.download(dt, { url = H.url("small.txt"), filePath = dest })
  H.eq(res.statusCode, 200, "statusCode")
  H.eq(H.readfile(dest), H.SMALL_TXT, "second replacement")
  H.expect_file("replaced.bin", #H.SMALL_TXT)
end)

H.test("an empty body makes an empty file", function()
  local dest = H.path("empty.bin")
  local res = H.download(dt, { url = H.url("empty.bin"), filePath = dest })
  H.eq(res.statusCode, 200, "statusCode")
  H.eq(res.dataLength, 0, "dataLength")
  H.eq(H.readfile(dest), "", "content")
  H.expect_file("empty.bin", 0)
end)

-- The runner checks these names from the Linux side, as bytes; here only the module's own
-- view is checked, since Windows' C library (io.open) reads names in the ANSI code page.
local UTF8_NAMES = {
  "na\195\175ve caf\195\169.txt",                                  -- naïve café.txt
  "\230\151\165\230\156\172\232\170\158.txt",                      -- 日本語.txt
  "\209\132\208\176\208\185\208\187 \240\159\152\128.txt",         -- файл 😀.txt (outside the BMP)
}

H.test("UTF-8 destination names are kept as UTF-8", function()
  for _, name in ipairs(UTF8_NAMES) do
    local dest = H.path(name)
    local res = H.download(dt, { url = H.url("small.txt"), filePath = dest })
    H.eq(res.errMsg, "downloadFile:ok", name)
    H.eq(res.statusCode, 200, name)
    H.eq(res.filePath, dest, "filePath of " .. name)
    if not H.WINDOWS then H.eq(H.readfile(dest), H.SMALL_TXT, name) end
    H.expect_file(name, #H.SMALL_TXT)
  end
end)

H.test("UTF-8 names are replaced as well", function()
  local dest = H.path(UTF8_NAMES[2])
  local res = H.download(dt, { url = H.url("1k.bin"), filePath = dest })
  H.eq(res.statusCode, 200, "statusCode")
  H.eq(res.dataLength, 1024, "dataLength")
  H.expect_file(UTF8_NAMES[2], 1024)
end)

H.test("without filePath the body goes to a new tempFilePath", function()
  local a = H.download(dt, { url = H.url("small.txt") })
  local b = H.download(dt, { url = H.url("small.txt") })
  H.eq(a.statusCode, 200, "statusCode")
  H.eq(a.filePath, nil, "filePath")
  H.truthy(type(a.tempFilePath) == "string" and a.tempFilePath ~= "", "tempFilePath")
  H.truthy(a.tempFilePath ~= b.tempFilePath, "two downloads got the same tempFilePath")
  H.eq(H.readfile(a.tempFilePath), H.SMALL_TXT, "content")
  H.truthy(os.remove(a.tempFilePath), "removing tempFilePath")
  H.truthy(os.remove(b.tempFilePath), "removing tempFilePath")
end)

H.test("the null device is written in place, never replaced", function()
  -- Windows' NUL (a DOS device, in any directory) and POSIX's /dev/null (a character device)
  local null = H.WINDOWS and "NUL" or "/dev/null"
  local res, kind = H.download(dt, { url = H.url("1k.bin"), filePath = null })
  H.eq(kind, "success", "kind")
  H.eq(res.statusCode, 200, "statusCode")
  H.eq(res.dataLength, 1024, "dataLength")
  H.truthy(res.filePath ~= nil, "filePath")
  H.eq(res.tempFilePath, nil, "tempFilePath")
end)

H.test("configure{tempDir} puts tempFilePath there", function()
  dt.configure { tempDir = H.TMPDIR }
  local res = H.download(dt, { url = H.url("1k.bin") })
  -- back to the default of each OS (the runner's TMPDIR is a Linux path, meaningless to Windows)
  dt.configure { tempDir = H.WINDOWS and (os.getenv("TEMP") or ".") or os.getenv("TMPDIR") or "/tmp" }
  H.eq(res.statusCode, 200, "statusCode")
  H.eq(res.tempFilePath:sub(1, #H.TMPDIR + 1), H.TMPDIR .. H.SEP, "tempFilePath's directory")
  H.truthy(H.readfile(res.tempFilePath) == H.pattern(0, 1024), "content")
  H.truthy(os.remove(res.tempFilePath), "removing tempFilePath")
end)

H.test("a non-2xx body goes to tempFilePath and leaves the destination alone", function()
  local dest = H.path("kept.txt")
  H.writefile(dest, "keep me")
  local res, kind = H.download(dt, { url = H.url("no-such-file.txt"), filePath = dest })
  H.eq(kind, "success", "a 404 is a response")
  H.eq(res.statusCode, 404, "statusCode")
  H.eq(res.filePath, nil, "filePath")
  H.truthy(type(res.tempFilePath) == "string", "tempFilePath")
  H.truthy((H.readfile(res.tempFilePath) or ""):find("404"), "the 404 page is in tempFilePath")
  H.truthy(os.remove(res.tempFilePath), "removing tempFilePath")
  H.eq(H.readfile(dest), "keep me", "destination")
  H.expect_file("kept.txt", 7)
end)

H.test("segments: 100 MiB over 4 ranged connections, positioned writes, the right digest", function()
  local dest = H.path("100m.bin")
  local want = os.getenv("DT_PORTABLE_SHA256_100M")
  local res, kind = H.download(dt, { url = H.url("100m.bin"), filePath = dest, segments = 4, sha256 = want })
  H.eq(kind, "success")
  H.eq(res.segments, 4, "segments")
  H.eq(res.dataLength, 104857600, "dataLength")
  H.eq(res.sha256, want, "sha256")
  H.expect_file("100m.bin", 104857600)
end)

H.run()
