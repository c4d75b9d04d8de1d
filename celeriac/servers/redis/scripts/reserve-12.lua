--[[ reserve-12: lease up to max_count messages from the queues asked for, in one step.

KEYS, 12 per queue, in the caller's queue order (queue g owns KEYS[12g-11] .. KEYS[12g]):
  ready, scheduled, leases, bodies, priorities, deliveries, expiries, seq, wake, dead,
  dead-letters, counters
ARGV:
  1  max_count
  2  lease_ms
  3  max_deliveries: leases that may run out (since the last retry) before dead-lettering
  4  dead-letter reason for that case; "{n}" becomes the count
  5  the FAILURE record (JSON) written for such a task, with placeholders
     "@celeriac-task-id@" (a JSON string), "@celeriac-reason@" (a JSON string),
     1111111111111 (date_done_ms) and 2222222222 (fencing token)
  6  result key prefix, 7 result channel prefix, 8 result expiry in ms (0: none)
  9  revoked-id key prefix
Returns {now_ms, next_event_in_ms, then 5 per message: queue index, task id, body, fencing
token, revoked (1 if the id is in the revoked set, else 0)}.
next_event_in_ms (only when nothing was taken; else -1): how soon the next scheduled
message is due or lease runs out, -1 if none; the caller blocks at most that long.

Per queue, in order: leases that ran out go back to ready (tail of their priority) or,
once max_deliveries of them ran out, to the dead letters with a FAILURE result so get()
does not wait forever (the queue's counters hash counts both: "expired" every lease run
out, "reclaimed" those put back) (written to result keys built from ARGV 6, not declared in KEYS:
this script needs a single server); scheduled messages now due move to ready; then the
revoked check of each leased id is answered here too (revoked keys are built from ARGV 9,
likewise), saving the worker a round trip before it starts them; then the
best ready messages over all queues (priority, then sequence) are leased: delivery count
+ 1, lease deadline = now + lease_ms, all in the server's clock.
When nothing is taken, the wake lists are emptied: they held tokens for messages other
workers already took, and a stale token would turn the caller's BLPOP into a busy loop.
Atomic as a script: no message is leased twice or lost between these steps.
]]
--- @include "clock"
--- @include "ready"
--- @include "chunked"
--- @include "dead_letter"
--- @include "result"

local STEP_LIMIT = 1000  -- bound on reclaims and promotions per queue per call
local max_count, lease_ms, max_deliveries = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reason_template, record_template = ARGV[4], ARGV[5]
local result_prefix, channel_prefix, result_expires_ms = ARGV[6], ARGV[7], tonumber(ARGV[8])
local revoked_prefix = ARGV[9]
local nq = #KEYS / 12
local now_ms, now_seq = server_clock()

local function key(g, i) return KEYS[12 * (g - 1) + i] end
local READY, SCHEDULED, LEASES, BODIES, PRIORITIES, DELIVERIES, EXPIRIES, SEQ, WAKE, DEAD, DEAD_LETTERS, COUNTERS =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12

local function replace_once(text, placeholder, value)
  local at = string.find(text, placeholder, 1, true)
  return string.sub(text, 1, at - 1) .. value .. string.sub(text, at + #placeholder)
end

-- The FAILURE a dead-lettered task shows; the template comes from message.py's encoder.
local function lost_record(task_id, reason, token)
  local record = replace_once(record_template, '"@celeriac-task-id@"', cjson.encode(task_id))
  record = replace_once(record, '"@celeriac-reason@"', cjson.encode(reason))
  record = replace_once(record, '1111111111111', string.format('%d', now_ms))
  return replace_once(record, '2222222222', string.format('%d', token))
end

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
    local back = {}
    for _, task_id in ipairs(expired) do
      local times = redis.call('HINCRBY', key(g, EXPIRIES), task_id, 1)
      if times >= max_deliveries then
        local reason = string.gsub(reason_template, '{n}', tostring(times))
        local token = bury(key(g, BODIES), key(g, PRIORITIES), key(g, DELIVERIES), key(g, EXPIRIES), key(g, DEAD),
                           key(g, DEAD_LETTERS), task_id, reason, now_ms)
        if token then
          write_result(result_prefix .. task_id, token, true, lost_record(task_id, reason, token),
                       result_expires_ms, channel_prefix .. task_id)
        end
      else
        back[#back + 1] = task_id
      end
    end
    make_ready(g, back)
    redis.call('HINCRBY', key(g, COUNTERS), 'expired', #expired)
    if #back > 0 then redis.call('HINCRBY', key(g, COUNTERS), 'reclaimed', #back) end
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
    reply[#reply + 1] = redis.call('EXISTS', revoked_prefix .. task_id)
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
