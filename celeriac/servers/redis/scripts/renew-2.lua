--[[ renew-2: extend the leases a worker still holds, all in one call.

KEYS, 2 per queue (queue g owns KEYS[2g-1], KEYS[2g]): leases, deliveries
ARGV:
  1  lease_ms
  then 3 per delivery: queue index g, task id, fencing token
Returns {new deadline ms (server clock), then the ids this worker no longer holds}.

Fenced: a lease that ran out and was taken by another reserve has a higher delivery
count, so the old holder cannot extend the new holder's lease. Atomic as a script.
]]
--- @include "clock"
--- @include "fencing"

local now_ms = server_clock()
local deadline = now_ms + tonumber(ARGV[1])
local reply = {deadline}
for i = 2, #ARGV, 3 do
  local g, task_id = tonumber(ARGV[i]), ARGV[i + 1]
  local leases = KEYS[2 * g - 1]
  if is_held(leases, KEYS[2 * g], task_id, ARGV[i + 2]) then
    redis.call('ZADD', leases, deadline, task_id)
  else
    reply[#reply + 1] = task_id
  end
end
return reply
