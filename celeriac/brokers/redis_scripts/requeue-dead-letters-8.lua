--[[ requeue-dead-letters-8: put dead letters back on their queue.

KEYS, 8 per queue (queue g owns KEYS[8g-7] .. KEYS[8g]):
  dead, dead-letters, bodies, priorities, deliveries, ready, seq, wake
ARGV: "*" for all, or the task ids to requeue (looked for in every queue given)
Returns how many were requeued.

A requeued message keeps its priority and its delivery count, so its next fencing token
is higher than any earlier delivery's (whose FAILURE record it must replace); its count of
run-out leases starts at zero. A dead letter whose id is pending again (published anew
since) stays where it is: the id must not be queued twice. Atomic as a script.
]]
--- @include "clock"
--- @include "ready"
--- @include "dead_letter"

local _, now_seq = server_clock()
local everything = ARGV[1] == '*'
local total = 0
for g = 1, #KEYS / 8 do
  local base = 8 * (g - 1)
  local dead, dead_letters, bodies = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local ids
  if everything then
    ids = redis.call('ZRANGE', dead, 0, -1)
  else
    ids = {}
    for _, task_id in ipairs(ARGV) do
      if redis.call('ZSCORE', dead, task_id) then ids[#ids + 1] = task_id end
    end
  end
  local back = 0
  for _, task_id in ipairs(ids) do
    local value = redis.call('HGET', dead_letters, task_id)
    if value and redis.call('HEXISTS', bodies, task_id) == 0 then
      local priority, count, _, body = unpack_dead_letter(value)
      redis.call('ZREM', dead, task_id)
      redis.call('HDEL', dead_letters, task_id)
      redis.call('HSET', bodies, task_id, body)
      redis.call('HSET', KEYS[base + 4], task_id, priority)
      if count > 0 then redis.call('HSET', KEYS[base + 5], task_id, count) end
      redis.call('ZADD', KEYS[base + 6], ready_score(priority, next_seqs(KEYS[base + 7], 1, now_seq)), task_id)
      back = back + 1
    elseif not value then
      redis.call('ZREM', dead, task_id)
    end
  end
  wake(KEYS[base + 8], back)
  total = total + back
end
return total
