--[[ dead-letter-7: move a held message to its queue's dead letters with a reason.

KEYS: leases, bodies, priorities, deliveries, expiries, dead, dead-letters (of its queue)
ARGV: task id, fencing token, reason
Returns 1 when done, 0 when refused (stale token). Fenced and atomic as a script.
]]
--- @once
--- @include "clock"
--- @include "fencing"
--- @include "dead_letter"

local task_id = ARGV[1]
if not is_held(KEYS[1], KEYS[4], task_id, ARGV[2]) then return 0 end
local now_ms = server_clock()
redis.call('ZREM', KEYS[1], task_id)
bury(KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], task_id, ARGV[3], now_ms)
return 1
