--[[ list-dead-letters-2: the oldest dead letters of each queue.

KEYS, 2 per queue: dead, dead-letters
ARGV: limit (per queue; the caller merges queues by failure time)
Returns 7 per dead letter: queue index, task id, its score (the failure time: see
dead_letter), reason, body, delivery count, priority. A task id dead-lettered more than once appears once per dead letter,
oldest first. A read-only script, so one call reads a consistent view of every queue.
]]
--- @include "dead_letter"

local limit = tonumber(ARGV[1])
local reply = {}
for g = 1, #KEYS / 2 do
  local dead = redis.call('ZRANGE', KEYS[2 * g - 1], 0, limit - 1, 'WITHSCORES')
  for j = 1, #dead, 2 do
    local value = redis.call('HGET', KEYS[2 * g], dead[j])
    if value then
      local task_id = split_dead_letter_entry(dead[j])
      local priority, count, reason, body = unpack_dead_letter(value)
      for _, field in ipairs({g, task_id, dead[j + 1], reason, body, count, priority}) do
        reply[#reply + 1] = field
      end
    end
  end
end
return reply
