--[[ dead_letter: move one message (already off its ready/scheduled/leases set) to the
queue's dead letters, and read them back.

Each dead letter is an entry of its own, so a task id dead-lettered again (it was sent
anew under the same id) keeps the earlier one: the entry is "<task id>\0<n>", n = 1, 2, ...
among that id's dead letters in the queue, so the highest n is the newest (a requeue takes
the newest, a purge takes all, so an id's n stay 1..k). An entry without that suffix was
written by an earlier build, which kept one per id: it counts as n = 0, the oldest.
The dead zset scores entries by failure time in microseconds of the server's clock, each
made greater than the queue's newest so that entries list in the order they were written
(earlier builds scored in ms: any score below 1e14 is ms). The dead-letters hash maps
each entry to
  "<priority>:<delivery count>:<len(reason)>:<reason><body>"
so a requeue restores the priority and goes on counting deliveries (fencing tokens keep
rising: a result of an earlier delivery never outranks a later one), and the body stays
opaque bytes.
]]
local function dead_letter_entry(task_id, n)
  if n == 0 then return task_id end
  return task_id .. '\0' .. n
end

-- The task id and n of an entry.
local function split_dead_letter_entry(entry)
  local task_id, n = string.match(entry, '^(.*)%z(%d+)$')
  if task_id then return task_id, tonumber(n) end
  return entry, 0
end

-- The highest n among the task id's dead letters in the queue, or false if it has none.
local function newest_dead_letter(dead_letters, task_id)
  local n = 0
  while redis.call('HEXISTS', dead_letters, dead_letter_entry(task_id, n + 1)) == 1 do n = n + 1 end
  if n > 0 then return n end
  if redis.call('HEXISTS', dead_letters, task_id) == 1 then return 0 end
  return false
end

-- The score of a dead letter written now (see above), as a string: Lua would print a
-- number of 16 digits in exponent form and lose its last ones.
local function dead_letter_score(dead)
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local newest = redis.call('ZRANGE', dead, -1, -1, 'WITHSCORES')[2]
  if newest and tonumber(newest) >= us then us = tonumber(newest) + 1 end
  return string.format('%.0f', us)
end

-- Returns the delivery count, or false when the message was gone. (now_ms is not used:
-- the entry's score is taken in microseconds.)
local function bury(bodies, priorities, deliveries, expiries, dead, dead_letters, task_id, reason, now_ms)
  local body = redis.call('HGET', bodies, task_id)
  local priority = redis.call('HGET', priorities, task_id) or '0'
  local count = redis.call('HGET', deliveries, task_id) or '0'
  redis.call('HDEL', bodies, task_id)
  redis.call('HDEL', priorities, task_id)
  redis.call('HDEL', deliveries, task_id)
  redis.call('HDEL', expiries, task_id)
  if not body then return false end
  local entry = dead_letter_entry(task_id, (newest_dead_letter(dead_letters, task_id) or 0) + 1)
  redis.call('ZADD', dead, dead_letter_score(dead), entry)
  redis.call('HSET', dead_letters, entry, priority .. ':' .. count .. ':' .. #reason .. ':' .. reason .. body)
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
