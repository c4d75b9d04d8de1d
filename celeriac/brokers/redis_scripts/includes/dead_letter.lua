--[[ dead_letter: move one message (already off its ready/scheduled/leases set) to the
queue's dead letters. The stored value is
  "<priority>:<delivery count>:<len(reason)>:<reason><body>"
so a requeue restores the priority and goes on counting deliveries (fencing tokens keep
rising: a result of an earlier delivery never outranks a later one), and the body stays
opaque bytes. Returns the delivery count, or false when the message was gone.
]]
local function bury(bodies, priorities, deliveries, expiries, dead, dead_letters, task_id, reason, now_ms)
  local body = redis.call('HGET', bodies, task_id)
  local priority = redis.call('HGET', priorities, task_id) or '0'
  local count = redis.call('HGET', deliveries, task_id) or '0'
  redis.call('HDEL', bodies, task_id)
  redis.call('HDEL', priorities, task_id)
  redis.call('HDEL', deliveries, task_id)
  redis.call('HDEL', expiries, task_id)
  if not body then return false end
  redis.call('ZADD', dead, now_ms, task_id)
  redis.call('HSET', dead_letters, task_id, priority .. ':' .. count .. ':' .. #reason .. ':' .. reason .. body)
  return tonumber(count)
end

-- Split a stored dead letter into priority, delivery count, reason and body.
local function unpack_dead_letter(value)
  local first = string.find(value, ':', 1, true)
  local second = string.find(value, ':', first + 1, true)
  local third = string.find(value, ':', second + 1, true)
  local priority = tonumber(string.sub(value, 1, first - 1))
  local count = tonumber(string.sub(value, first + 1, second - 1))
  local reason_len = tonumber(string.sub(value, second + 1, third - 1))
  local reason = string.sub(value, third + 1, third + reason_len)
  return priority, count, reason, string.sub(value, third + reason_len + 1)
end
