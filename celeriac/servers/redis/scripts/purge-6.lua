--[[ purge-6: drop every queued and scheduled message of one queue; reserved ones stay.

KEYS: ready, scheduled, bodies, priorities, deliveries, expiries (of the queue)
ARGV: none
Returns how many were dropped. Atomic as a script, so a message being reserved at the
same moment is either leased (and kept) or dropped, never both.
]]
--- @include "chunked"

local doomed = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, task_id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do doomed[#doomed + 1] = task_id end
if #doomed > 0 then
  for k = 3, 6 do call_chunked('HDEL', KEYS[k], doomed) end
end
redis.call('DEL', KEYS[1], KEYS[2])
return #doomed
