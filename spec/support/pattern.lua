-- Deterministic content of a virtual, endless test file.
--
-- Shared by servers.lua (files in nginx's docroot, checks of downloaded
-- files) and faultserver.lua (generated bodies), so a byte at a given offset
-- is the same whichever server sent it.
--
-- The file is a sequence of 64 KiB blocks. Every block is the same
-- pseudo-random base block (an LCG, so no short period) with the block's
-- number stamped big-endian into its first 4 bytes. The stamp makes the whole
-- file aperiodic: a resume that restarts at the wrong block boundary, or a
-- block written twice, changes the content. Only one block is ever computed;
-- everything else is string slicing, so 100 MiB take a fraction of a second.

local M = {}

local BLOCK = 65536
M.BLOCK = BLOCK

-- Plain arithmetic (no bitwise operators, string.pack or //), so the busted
-- process can load this under every Lua the suite runs on (5.1 to 5.4, LuaJIT);
-- the bytes are the same as with 5.3's integer operators.
local sub, min, max, concat, floor = string.sub, math.min, math.max, table.concat, math.floor
local unpack = table.unpack or unpack
local tointeger = math.tointeger or function(v)
  if type(v) == "number" and v % 1 == 0 then return v end
end

-- k as 4 bytes, big-endian (string.pack(">I4", k & 0xffffffff))
local function spack4(k)
  k = k % 4294967296
  return string.char(floor(k / 16777216), floor(k / 65536) % 256, floor(k / 256) % 256, k % 256)
end

local base
do
  -- x = (x * 1103515245 + 12345) mod 2^31, with the multiplier split in 16-bit
  -- halves so that no product exceeds 2^53 (exact in a double)
  local bytes, chars, x = {}, string.char, 0x2545F491
  local AH, AL = 16838, 20077            -- 1103515245 = AH * 65536 + AL
  for i = 1, BLOCK do
    x = (x * AL + (x * AH % 32768) * 65536 + 12345) % 2147483648
    bytes[i] = floor(x / 65536) % 256
  end
  local parts = {}
  for i = 1, BLOCK, 4096 do            -- string.char takes a bounded arg list
    parts[#parts + 1] = chars(unpack(bytes, i, i + 4095))
  end
  base = concat(parts)
end
local tail = sub(base, 5)               -- the part of a block after its stamp

-- Bytes [pos, pos + len) of block k (pos 0-based, within one block).
local function piece(k, pos, len)
  if pos == 0 and len == BLOCK then
    return spack4(k) .. tail
  end
  local last = pos + len                -- exclusive
  if pos >= 4 then return sub(base, pos + 1, last) end
  local stamp = sub(spack4(k), pos + 1, min(4, last))
  if last <= 4 then return stamp end
  return stamp .. sub(base, 5, last)
end

-- The n bytes at [offset, offset + n) of the virtual file.
function M.pattern(offset, n)
  offset, n = tointeger(offset), tointeger(n)
  assert(offset and offset >= 0, "pattern: offset must be a non-negative integer")
  assert(n and n >= 0, "pattern: n must be a non-negative integer")
  if n == 0 then return "" end
  local k, pos = floor(offset / BLOCK), offset % BLOCK
  if pos + n <= BLOCK then return piece(k, pos, n) end
  local parts, left = {}, n
  while left > 0 do
    local len = min(BLOCK - pos, left)
    parts[#parts + 1] = piece(k, pos, len)
    left = left - len
    k, pos = k + 1, 0
  end
  return concat(parts)
end

-- Calls fn(chunk, chunk_offset) for [offset, offset + n) in pieces of at
-- most `size` bytes, so big ranges can be streamed without one huge string.
function M.each(offset, n, size, fn)
  size = max(1, size or BLOCK)
  local done = 0
  while done < n do
    local len = min(size, n - done)
    fn(M.pattern(offset + done, len), offset + done)
    done = done + len
  end
end

return M
