-- HTTPS against the test CA: verification on by default, caFile, wrong host names.
-- Plain Lua (see harness.lua); runs under wine (Schannel) and on Linux (OpenSSL).
-- URLs name localhost, not 127.0.0.1: Schannel in curl 7.88 checks IP addresses against
-- the certificate's DNS names only.
local H = dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "harness.lua")
local dt = require "downloadtask"

H.test("https with caFile downloads", function()
  local dest = H.path("tls-small.txt")
  local res, kind = H.download(dt, { url = H.https_url("small.txt"), filePath = dest, caFile = H.CA })
  H.eq(kind, "success", "kind (" .. tostring(res.errMsg) .. ")")
  H.eq(res.statusCode, 200, "statusCode")
  H.eq(H.readfile(dest), H.SMALL_TXT, "content")
  H.expect_file("tls-small.txt", #H.SMALL_TXT)
end)

H.test("https with caFile: 1 MiB byte for byte", function()
  local dest = H.path("tls-1m.bin")
  local res = H.download(dt, { url = H.https_url("1m.bin"), filePath = dest, caFile = H.CA })
  H.eq(res.statusCode, 200, "statusCode (" .. tostring(res.errMsg) .. ")")
  H.truthy(H.readfile(dest) == H.pattern(0, 1048576), "the file differs from the served pattern")
  H.expect_file("tls-1m.bin", 1048576)
end)

H.test("the test CA is not trusted without caFile", function()
  if H.WINE then
    -- Measured: without CURLOPT_CAINFO, wine's Schannel accepts any certificate (even a
    -- self-signed one); only a real Windows trust store can answer this.
    H.skip("wine's Schannel does not verify against the system store")
  end
  local err, kind = H.download(dt, { url = H.https_url("small.txt"), filePath = H.path("untrusted.txt") })
  H.eq(kind, "fail", "kind")
  H.eq(err.errno, 600001, "errno (" .. tostring(err.errMsg) .. ")")
end)

H.test("a certificate for another host fails even with caFile", function()
  local err, kind = H.download(dt, { url = H.wronghost_url("small.txt"), filePath = H.path("wronghost.txt"),
    caFile = H.CA })
  H.eq(kind, "fail", "kind")
  H.eq(err.errno, 600001, "errno (" .. tostring(err.errMsg) .. ")")
end)

H.test("with caFile: a self-signed certificate is refused", function()
  local err, kind = H.download(dt, { url = H.selfsigned_url("small.txt"), filePath = H.path("selfsigned.txt"),
    caFile = H.CA })
  H.eq(kind, "fail", "kind")
  H.eq(err.errno, 600001, "errno (" .. tostring(err.errMsg) .. ")")
end)

H.test("with caFile: an expired certificate is refused", function()
  local err, kind = H.download(dt, { url = H.expired_url("small.txt"), filePath = H.path("expired.txt"),
    caFile = H.CA })
  H.eq(kind, "fail", "kind")
  H.eq(err.errno, 600001, "errno (" .. tostring(err.errMsg) .. ")")
end)

H.test("insecure skips verification", function()
  local res, kind = H.download(dt, { url = H.wronghost_url("small.txt"), filePath = H.path("insecure.txt"),
    insecure = true })
  H.eq(kind, "success", "kind (" .. tostring(res.errMsg) .. ")")
  H.eq(res.statusCode, 200, "statusCode")
  H.expect_file("insecure.txt", #H.SMALL_TXT)
end)

H.run()
