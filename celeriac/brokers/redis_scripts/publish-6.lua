--[[ publish-6: store new messages, refusing (or skipping) ids still pending in their queue.

KEYS, 6 per queue named in the batch (queue g owns KEYS[6g-5] .. KEYS[6g]):
  ready, scheduled, bodies, priorities, seq, wake
ARGV:
  1  "1": skip ids already pending; "0": refuse the whole batch
  then 5 per message: queue index g, task id, priority 0-9, eta_ms ("" = now), body
Returns {count stored} or {-1, the duplicate id}.

An id is pending while its queue's bodies hash holds it (scheduled, queued or reserved).
The script runs atomically, so the check covers the whole batch before anything is
written and no other publish can slip in between.
]]
--- @include "clock"
--- @include "ready"

local skip_duplicates = ARGV[1] == '1'
local now_ms, now_seq = server_clock()

local fresh = {}
local seen = {}
for i = 2, #ARGV, 5 do
  local g, task_id = tonumber(ARGV[i]), ARGV[i + 1]
  if seen[task_id] or redis.call('HEXISTS', KEYS[6 * g - 3], task_id) == 1 then
    if not skip_duplicates then return {-1, task_id} end
  else
    seen[task_id] = true
    fresh[#fresh + 1] = i
  end
end

local woken = {}
local last_used = {}
for _, i in ipairs(fresh) do
  local g, task_id, priority, eta = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local base = 6 * (g - 1)
  redis.call('HSET', KEYS[base + 3], task_id, ARGV[i + 4])
  redis.call('HSET', KEYS[base + 4], task_id, priority)
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
  redis.call('SET', KEYS[6 * g - 1], last)
  wake(KEYS[6 * g], woken[g])
end
return {#fresh}
