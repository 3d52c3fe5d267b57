-- Checks the Windows tool chain with the probe module (tools/windows/probe.c): the Lua
-- DLL, the static Schannel libcurl, wine's loopback TCP and TLS, against the servers of
-- tools/windows/run-portable.lua (which runs this with each Windows interpreter).
-- Uses spec/portable/harness.lua; run from the repository root.
local H = dofile("spec/portable/harness.lua")
local probe = require "probe"

-- CURLE_* codes, from curl/curl.h
local CURLE_COULDNT_CONNECT, CURLE_PEER_FAILED_VERIFICATION = 7, 60

H.test("the interpreter and libcurl", function()
  print("  " .. (jit and jit.version or _VERSION) .. ", " .. probe.version())
  H.truthy(probe.version():find("Schannel", 1, true), "libcurl with Schannel")
end)

H.test("http: 1 MiB over loopback", function()
  local status, length, ip = probe.get(H.url("1m.bin"))
  H.eq(status, 200, "status (" .. tostring(length) .. ")")
  H.eq(length, 1048576, "body length")
  H.eq(ip, "127.0.0.1", "peer")
end)

H.test("http: a 404 is a status, not an error", function()
  H.eq(probe.get(H.url("no-such-file")), 404, "status")
end)

H.test("http: connection refused", function()
  local status, msg, code = probe.get(("http://127.0.0.1:%d/"):format(H.CLOSED_PORT))
  H.eq(status, nil, "status")
  H.eq(code, CURLE_COULDNT_CONNECT, "CURLcode (" .. tostring(msg) .. ")")
end)

H.test("https: the test CA through CURLOPT_CAINFO", function()
  local status, length = probe.get(H.https_url("small.txt"), H.CA)
  H.eq(status, 200, "status (" .. tostring(length) .. ")")
  H.eq(length, #H.SMALL_TXT, "body length")
end)

H.test("https: the test CA with CURLSSLOPT_NO_REVOKE", function()
  local status, length = probe.get(H.https_url("1m.bin"), H.CA, true)
  H.eq(status, 200, "status (" .. tostring(length) .. ")")
  H.eq(length, 1048576, "body length")
end)

H.test("https with CURLOPT_CAINFO: host names, trust and dates are checked", function()
  for _, case in ipairs {
    { H.wronghost_url("small.txt"), "another host's certificate" },
    { H.selfsigned_url("small.txt"), "a self-signed certificate" },
    { H.expired_url("small.txt"), "an expired certificate" },
    -- curl 7.88's Schannel matches DNS names only, not the certificate's IP address
    { H.https_url("small.txt"):gsub("//localhost:", "//127.0.0.1:"), "an IP address URL" },
  } do
    local status, msg, code = probe.get(case[1], H.CA)
    H.eq(status, nil, case[2] .. ": status")
    H.eq(code, CURLE_PEER_FAILED_VERIFICATION, case[2] .. ": CURLcode (" .. tostring(msg) .. ")")
  end
end)

-- Not a check: what the platform's own trust store says about a self-signed certificate.
-- Under wine (measured with wine 8.0 on Debian 12) it says yes: its Schannel does not
-- verify without CURLOPT_CAINFO, so the system-store path is only testable on Windows.
do
  local status, msg = probe.get(H.selfsigned_url("small.txt"))
  print(("  note: a self-signed certificate without CAINFO: %s"):format(
    status and "ACCEPTED (status " .. status .. ")" or "refused (" .. tostring(msg) .. ")"))
end

H.run()
