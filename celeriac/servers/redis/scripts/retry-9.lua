--[[ retry-9: replace a held message by its next attempt (same id, new body), in one step.

KEYS: leases, bodies, priorities, deliveries, expiries, ready, scheduled, seq, wake (of its queue)
ARGV: task id, fencing token, new body, eta_ms ("" = now)
Returns 1 when done, 0 when refused (stale token).

The next attempt is scheduled (no lease until due) or queued at the tail of its priority.
It keeps the delivery count (tokens keep rising) and the id stays pending throughout, so
a publish of the same id is still refused. Its count of run-out leases starts over: a
task that retries is not one that kills its worker. Fenced and atomic as a script; a
retry of the call after a lost reply gets the first reply (once.lua), not a refusal.
]]
--- @once
--- @include "clock"
--- @include "ready"
--- @include "fencing"

local task_id, eta = ARGV[1], ARGV[4]
if not is_held(KEYS[1], KEYS[4], task_id, ARGV[2]) then return 0 end
local now_ms, now_seq = server_clock()
redis.call('ZREM', KEYS[1], task_id)
redis.call('HSET', KEYS[2], task_id, ARGV[3])
redis.call('HDEL', KEYS[5], task_id)
if eta ~= '' and tonumber(eta) > now_ms then
  redis.call('ZADD', KEYS[7], eta, task_id)
else
  local priority = tonumber(redis.call('HGET', KEYS[3], task_id) or '0')
  redis.call('ZADD', KEYS[6], ready_score(priority, next_seqs(KEYS[8], 1, now_seq)), task_id)
  wake(KEYS[9], 1)
end
return 1
