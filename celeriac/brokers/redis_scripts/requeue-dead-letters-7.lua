--[[ requeue-dead-letters-7: put dead letters back on their queue with a fresh delivery count.

KEYS, 7 per queue (queue g owns KEYS[7g-6] .. KEYS[7g]):
  dead, dead-letters, bodies, priorities, ready, seq, wake
ARGV: "*" for all, or the task ids to requeue (looked for in every queue given)
Returns how many were requeued.

A dead letter whose id is pending again (published anew since) stays where it is: the
id must not be queued twice. Requeued messages keep their priority and go to the tail.
Atomic as a script.
]]
--- @include "clock"
--- @include "ready"
--- @include "chunked"
--- @include "dead_letter"

local _, now_seq = server_clock()
local everything = ARGV[1] == '*'
local total = 0
for g = 1, #KEYS / 7 do
  local base = 7 * (g - 1)
  local dead, dead_letters, bodies, priorities, ready = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3],
    KEYS[base + 4], KEYS[base + 5]
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
      local priority, _, body = unpack_dead_letter(value)
      redis.call('ZREM', dead, task_id)
      redis.call('HDEL', dead_letters, task_id)
      redis.call('HSET', bodies, task_id, body)
      redis.call('HSET', priorities, task_id, priority)
      redis.call('ZADD', ready, ready_score(priority, next_seqs(KEYS[base + 6], 1, now_seq)), task_id)
      back = back + 1
    elseif not value then
      redis.call('ZREM', dead, task_id)
    end
  end
  wake(KEYS[base + 7], back)
  total = total + back
end
return total
