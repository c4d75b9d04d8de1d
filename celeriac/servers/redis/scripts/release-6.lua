--[[ release-6: put held messages back at the head of their queue now.

KEYS, 6 per queue (queue g owns KEYS[6g-5] .. KEYS[6g]):
  leases, deliveries, priorities, ready, seq, wake
ARGV: 3 per delivery: queue index g, task id, fencing token
Returns the ids refused (stale token).

Released messages go ahead of everything of their priority (head_score), keep their
delivery count (the next reserve raises it), and wake one idle reserver each.
Fenced and atomic as a script; a retry of the call after a lost reply gets the first
reply (once.lua), not a refusal.
]]
--- @once
--- @include "clock"
--- @include "ready"
--- @include "fencing"

local _, now_seq = server_clock()
local refused = {}
local released = {}
for i = 1, #ARGV, 3 do
  local g, task_id = tonumber(ARGV[i]), ARGV[i + 1]
  local base = 6 * (g - 1)
  if is_held(KEYS[base + 1], KEYS[base + 2], task_id, ARGV[i + 2]) then
    redis.call('ZREM', KEYS[base + 1], task_id)
    local priority = tonumber(redis.call('HGET', KEYS[base + 3], task_id) or '0')
    local seq = next_seqs(KEYS[base + 5], 1, now_seq)
    redis.call('ZADD', KEYS[base + 4], head_score(priority, seq), task_id)
    released[g] = (released[g] or 0) + 1
  else
    refused[#refused + 1] = task_id
  end
end
for g, count in pairs(released) do
  wake(KEYS[6 * g], count)
end
return refused
