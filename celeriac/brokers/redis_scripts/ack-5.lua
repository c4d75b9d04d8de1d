--[[ ack-5: remove finished messages and write their results, in one call.

KEYS: 5 per queue (queue g owns KEYS[5g-4] .. KEYS[5g]): leases, bodies, priorities,
      deliveries, expiries; then one result key per record (after all queue keys)
ARGV:
  1  number of queues nq
  2  number of deliveries nd
  3  result expiry in ms (0: none)
  4  result channel prefix (a ready record is announced on prefix .. task id)
  then 3 per delivery: queue index g, task id, fencing token
  then 4 per record: task id, fencing token, "1" if ready else "0", record JSON
Returns the ids whose ack was refused (stale token: another delivery holds the message).

A refused ack writes no result: its worker lost the lease and the new holder's result
wins. Records are fenced too (see result.lua). Atomic as a script, so a message is never
gone without its result, nor its result written while the message is still held.
]]
--- @include "fencing"
--- @include "result"

local nq, nd = tonumber(ARGV[1]), tonumber(ARGV[2])
local expires_ms, channel_prefix = tonumber(ARGV[3]), ARGV[4]
local refused = {}
local is_refused = {}
local first_record = 5 + 3 * nd
for i = 5, first_record - 1, 3 do
  local g, task_id = tonumber(ARGV[i]), ARGV[i + 1]
  local base = 5 * (g - 1)
  if is_held(KEYS[base + 1], KEYS[base + 4], task_id, ARGV[i + 2]) then
    redis.call('ZREM', KEYS[base + 1], task_id)
    redis.call('HDEL', KEYS[base + 2], task_id)
    redis.call('HDEL', KEYS[base + 3], task_id)
    redis.call('HDEL', KEYS[base + 4], task_id)
    redis.call('HDEL', KEYS[base + 5], task_id)
  else
    refused[#refused + 1] = task_id
    is_refused[task_id] = true
  end
end
local result_key = 5 * nq
for i = first_record, #ARGV, 4 do
  result_key = result_key + 1
  local task_id = ARGV[i]
  if not is_refused[task_id] then
    write_result(KEYS[result_key], tonumber(ARGV[i + 1]), ARGV[i + 2] == '1', ARGV[i + 3], expires_ms,
                 channel_prefix .. task_id)
  end
end
return refused
