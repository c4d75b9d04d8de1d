--[[ publish-7: store new messages, refusing (or skipping) ids pending or remembered in their queue.

KEYS, 7 per queue named in the batch (queue g owns KEYS[7g-6] .. KEYS[7g]):
  ready, scheduled, bodies, priorities, seq, wake, unique
ARGV:
  1  "1": skip duplicate ids; "0": refuse the whole batch
  then 6 per message: queue index g, task id, priority 0-9, eta_ms ("" = now), body,
  unique_ms ("" = not remembered after it is done)
Returns {count stored}, {-1, id} for an id still pending, {-2, id} for an id remembered.

An id is pending while its queue's bodies hash holds it (scheduled, queued or reserved),
and remembered while its unique entry lies in the future: follow-ups (a chain's next
step, a chord body) are published that way so a second copy is refused even after the
first finished. The script runs atomically, so the check covers the whole batch before
anything is written and no other publish can slip in between.

A client's retry of this call after its reply was lost (the batch was stored, or refused)
gets the first reply (once.lua): no second copy, and no refusal of its own messages.
]]
--- @once
--- @include "clock"
--- @include "ready"

local skip_duplicates = ARGV[1] == '1'
local now_ms, now_seq = server_clock()

local pruned = {}
local fresh = {}
local seen = {}
for i = 2, #ARGV, 6 do
  local g, task_id = tonumber(ARGV[i]), ARGV[i + 1]
  local base = 7 * (g - 1)
  local verdict = nil
  if seen[task_id] or redis.call('HEXISTS', KEYS[base + 3], task_id) == 1 then
    verdict = -1
  else
    local remembered_until = redis.call('ZSCORE', KEYS[base + 7], task_id)
    if remembered_until and tonumber(remembered_until) > now_ms then verdict = -2 end
  end
  if verdict == nil then
    seen[task_id] = true
    fresh[#fresh + 1] = i
  elseif not skip_duplicates then
    return {verdict, task_id}
  end
end

local woken = {}
local last_used = {}
for _, i in ipairs(fresh) do
  local g, task_id, priority, eta = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local base = 7 * (g - 1)
  redis.call('HSET', KEYS[base + 3], task_id, ARGV[i + 4])
  redis.call('HSET', KEYS[base + 4], task_id, priority)
  if ARGV[i + 5] ~= '' then
    if not pruned[g] then
      redis.call('ZREMRANGEBYSCORE', KEYS[base + 7], '-inf', now_ms)  -- forget expired entries
      pruned[g] = true
    end
    redis.call('ZADD', KEYS[base + 7], now_ms + tonumber(ARGV[i + 5]), task_id)
  end
  if eta ~= '' and tonumber(eta) > now_ms then
    redis.call('ZADD', KEYS[base + 2], eta, task_id)
  else
    -- Number the batch's ready messages in order; the counter is stored once, below.
    last_used[g] = (last_used[g] or last_seq(KEYS[base + 5], now_seq)) + 1
    redis.call('ZADD', KEYS[base + 1], ready_score(priority, last_used[g]), task_id)
    woken[g] = (woken[g] or 0) + 1
  end
end
for g, last in pairs(last_used) do
  redis.call('SET', KEYS[7 * g - 2], last)
  wake(KEYS[7 * g - 1], woken[g])
end
return {#fresh}
