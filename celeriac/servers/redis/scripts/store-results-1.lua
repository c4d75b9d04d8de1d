--[[ store-results-1: write fenced result records.

KEYS: one result key per record
ARGV:
  1  expiry in ms (0: none)
  2  result channel prefix (a ready record is announced on prefix .. task id)
  then 4 per record: task id, fencing token, "1" if ready else "0", record JSON
Returns the ids refused because a newer delivery's record is stored (see result.lua).
Atomic as a script: the token check and the write cannot interleave with another write.
]]
--- @include "result"

local expires_ms, channel_prefix = tonumber(ARGV[1]), ARGV[2]
local refused = {}
for k = 1, #KEYS do
  local i = 3 + 4 * (k - 1)
  local written = write_result(KEYS[k], tonumber(ARGV[i + 1]), ARGV[i + 2] == '1', ARGV[i + 3], expires_ms,
                               channel_prefix .. ARGV[i])
  if written == 0 then refused[#refused + 1] = ARGV[i] end
end
return refused
