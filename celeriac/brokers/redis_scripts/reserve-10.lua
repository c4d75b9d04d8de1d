--[[ reserve-10: lease up to max_count messages from the queues asked for, in one step.

KEYS, 10 per queue, in the caller's queue order (queue g owns KEYS[10g-9] .. KEYS[10g]):
  ready, scheduled, leases, bodies, priorities, deliveries, seq, wake, dead, dead-letters
ARGV:
  1  max_count
  2  lease_ms
  3  max_deliveries
  4  dead-letter reason for a lease that ran out max_deliveries times; "{n}" becomes the count
Returns {now_ms, next_event_in_ms, then 4 per message: queue index, task id, body, fencing token}.
next_event_in_ms (only when nothing was taken; else -1): how soon the next scheduled
message is due or lease runs out, -1 if none; the caller blocks at most that long.

Per queue, in order: leases that ran out go back to ready (tail of their priority) or,
after max_deliveries, to the dead letters; scheduled messages now due move to ready;
then the best ready messages over all queues (priority, then sequence) are leased:
delivery count + 1, lease deadline = now + lease_ms. All deadlines use the server's clock.
When nothing is taken, the wake lists are emptied: they held tokens for messages other
workers already took, and a stale token would turn the caller's BLPOP into a busy loop.
Atomic as a script: no message is leased twice or lost between these steps.
]]
--- @include "clock"
--- @include "ready"
--- @include "chunked"
--- @include "dead_letter"

local STEP_LIMIT = 1000  -- bound on reclaims and promotions per queue per call
local max_count, lease_ms, max_deliveries = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reason_template = ARGV[4]
local nq = #KEYS / 10
local now_ms, now_seq = server_clock()

local function key(g, i) return KEYS[10 * (g - 1) + i] end
local READY, SCHEDULED, LEASES, BODIES, PRIORITIES, DELIVERIES, SEQ, WAKE, DEAD, DEAD_LETTERS =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10

-- Requeue (at the tail of their priority) ids that just left leases or scheduled.
local function make_ready(g, ids)
  if #ids == 0 then return end
  local priorities = redis.call('HMGET', key(g, PRIORITIES), unpack(ids))
  local seq = next_seqs(key(g, SEQ), #ids, now_seq)
  local pairs_ = {}
  for j, task_id in ipairs(ids) do
    pairs_[#pairs_ + 1] = ready_score(tonumber(priorities[j] or '0'), seq + j - 1)
    pairs_[#pairs_ + 1] = task_id
  end
  call_chunked('ZADD', key(g, READY), pairs_)
end

for g = 1, nq do
  local expired = redis.call('ZRANGEBYSCORE', key(g, LEASES), '-inf', now_ms, 'LIMIT', 0, STEP_LIMIT)
  if #expired > 0 then
    call_chunked('ZREM', key(g, LEASES), expired)
    local counts = redis.call('HMGET', key(g, DELIVERIES), unpack(expired))
    local back = {}
    for j, task_id in ipairs(expired) do
      local count = tonumber(counts[j] or '0')
      if count >= max_deliveries then
        local reason = string.gsub(reason_template, '{n}', tostring(count))
        bury(key(g, BODIES), key(g, PRIORITIES), key(g, DELIVERIES), key(g, DEAD), key(g, DEAD_LETTERS),
             task_id, reason, now_ms)
      else
        back[#back + 1] = task_id
      end
    end
    make_ready(g, back)
  end
  local due = redis.call('ZRANGEBYSCORE', key(g, SCHEDULED), '-inf', now_ms, 'LIMIT', 0, STEP_LIMIT)
  if #due > 0 then
    call_chunked('ZREM', key(g, SCHEDULED), due)
    make_ready(g, due)
  end
end

-- Pick the best max_count: one queue pops directly; several are merged by score.
local picked = {}  -- flat: queue index, task id
if nq == 1 then
  local popped = redis.call('ZPOPMIN', key(1, READY), max_count)
  for j = 1, #popped, 2 do
    picked[#picked + 1] = 1
    picked[#picked + 1] = popped[j]
  end
else
  local candidates = {}
  for g = 1, nq do
    local head = redis.call('ZRANGE', key(g, READY), 0, max_count - 1, 'WITHSCORES')
    for j = 1, #head, 2 do
      candidates[#candidates + 1] = {tonumber(head[j + 1]), g, head[j]}
    end
  end
  table.sort(candidates, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  for j = 1, math.min(max_count, #candidates) do
    local c = candidates[j]
    redis.call('ZREM', key(c[2], READY), c[3])
    picked[#picked + 1] = c[2]
    picked[#picked + 1] = c[3]
  end
end

local deadline = now_ms + lease_ms
local reply = {now_ms, -1}
for j = 1, #picked, 2 do
  local g, task_id = picked[j], picked[j + 1]
  local body = redis.call('HGET', key(g, BODIES), task_id)
  if body then
    local token = redis.call('HINCRBY', key(g, DELIVERIES), task_id, 1)
    redis.call('ZADD', key(g, LEASES), deadline, task_id)
    reply[#reply + 1] = g
    reply[#reply + 1] = task_id
    reply[#reply + 1] = body
    reply[#reply + 1] = token
  end
end

if #reply == 2 then
  local next_event = nil
  for g = 1, nq do
    for _, set in ipairs({SCHEDULED, LEASES}) do
      local first = redis.call('ZRANGE', key(g, set), 0, 0, 'WITHSCORES')
      if first[2] then
        local at = tonumber(first[2])
        if next_event == nil or at < next_event then next_event = at end
      end
    end
    redis.call('DEL', key(g, WAKE))
  end
  if next_event ~= nil then reply[2] = math.max(next_event - now_ms, 0) end
end
return reply
