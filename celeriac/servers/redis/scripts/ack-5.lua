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

An ack of a message that is gone altogether (no longer scheduled, queued or reserved) is
not refused: it was acknowledged already, most likely by this very worker in a call
whose reply was lost and that it sent again as a new call after the client gave up
retrying (a retry of the same call gets its first reply: see once.lua), or finished by a
worker that took the lease over, or dead-lettered. Nothing is left to fence, and its
result is not written: the ack that removed the message wrote its own.
]]
--- @once
--- @include "fencing"
--- @include "result"

local nq, nd = tonumber(ARGV[1]), tonumber(ARGV[2])
local expires_ms, channel_prefix = tonumber(ARGV[3]), ARGV[4]
local refused = {}
local unwritten = {}  -- ids whose result is not written: refused, or already gone
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
    if redis.call('HEXISTS', KEYS[base + 2], task_id) == 1 then refused[#refused + 1] = task_id end
    unwritten[task_id] = true
  end
end
local result_key = 5 * nq
for i = first_record, #ARGV, 4 do
  result_key = result_key + 1
  local task_id = ARGV[i]
  if not unwritten[task_id] then
    write_result(KEYS[result_key], tonumber(ARGV[i + 1]), ARGV[i + 2] == '1', ARGV[i + 3], expires_ms,
                 channel_prefix .. task_id)
  end
end
return refused
