--[[ record-group-member-2: store a group member's record and count the member, once.

KEYS: the member's result key, the group's finished-members set
ARGV: member id, total, fencing token, "1" if ready else "0", record JSON, expiry ms
      (0: none), result channel
Returns {finished count, 1 if this call made the set reach total else 0}.

The finished set (never a bare counter) makes a member that runs twice count once, and
since the script is atomic exactly one call sees the count cross total: the one that
enqueues the chord body.
]]
--- @include "result"

local member_id, total, expires_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[6])
write_result(KEYS[1], tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5], expires_ms, ARGV[7])
local added = redis.call('SADD', KEYS[2], member_id)
local done = redis.call('SCARD', KEYS[2])
if expires_ms > 0 then redis.call('PEXPIRE', KEYS[2], expires_ms) end
local newly_complete = 0
if added == 1 and done >= total and done - 1 < total then newly_complete = 1 end
return {done, newly_complete}
