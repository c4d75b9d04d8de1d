--[[ dead_letter: move one message (already off its ready/scheduled/leases set) to the
queue's dead-letter set. The stored value is "<priority>:<len(reason)>:<reason><body>"
so requeueing restores the priority and the body stays opaque bytes.
]]
local function bury(bodies, priorities, deliveries, dead, dead_letters, task_id, reason, now_ms)
  local body = redis.call('HGET', bodies, task_id)
  local priority = redis.call('HGET', priorities, task_id) or '0'
  redis.call('HDEL', bodies, task_id)
  redis.call('HDEL', priorities, task_id)
  redis.call('HDEL', deliveries, task_id)
  if not body then return end
  redis.call('ZADD', dead, now_ms, task_id)
  redis.call('HSET', dead_letters, task_id, priority .. ':' .. #reason .. ':' .. reason .. body)
end

-- Split a stored dead letter into priority, reason and body.
local function unpack_dead_letter(value)
  local first = string.find(value, ':', 1, true)
  local second = string.find(value, ':', first + 1, true)
  local reason_len = tonumber(string.sub(value, first + 1, second - 1))
  local priority = tonumber(string.sub(value, 1, first - 1))
  local reason = string.sub(value, second + 1, second + reason_len)
  return priority, reason, string.sub(value, second + reason_len + 1)
end
