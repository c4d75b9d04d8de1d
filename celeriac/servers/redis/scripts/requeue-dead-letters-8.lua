--[[ requeue-dead-letters-8: put dead letters back on their queue.

KEYS, 8 per queue (queue g owns KEYS[8g-7] .. KEYS[8g]):
  dead, dead-letters, bodies, priorities, deliveries, ready, seq, wake
ARGV: "all" (every task id that has a dead letter), or "ids" then the task ids to
requeue (each looked for in every queue given)
Returns, per task id: the id, then 1 (requeued), 0 (kept: a message with that id is
scheduled, queued or reserved in its queue) or -1 (no dead letter has that id).

Per task id only its newest dead letter is requeued (the latest failure across the
queues; within a queue the highest n, see dead_letter): older ones stay, since one id is
never queued twice. A requeued message keeps its priority and its delivery count, so its
next fencing token is higher than any earlier delivery's (whose FAILURE record it must
replace); its count of run-out leases starts at zero. A dead letter whose id is pending
again (published anew since) stays where it is. Atomic as a script.
]]
--- @include "clock"
--- @include "ready"
--- @include "dead_letter"

local _, now_seq = server_clock()
local function key(g, i) return KEYS[8 * (g - 1) + i] end
local DEAD, DEAD_LETTERS, BODIES, PRIORITIES, DELIVERIES, READY, SEQ, WAKE = 1, 2, 3, 4, 5, 6, 7, 8

-- Each task id's newest dead letter: {queue index, entry, n, failure time}.
local ids, newest = {}, {}
local function consider(task_id, g, entry, n, score)
  local best = newest[task_id]
  if best == nil then
    ids[#ids + 1] = task_id
  elseif score < best[4] or (score == best[4] and n <= best[3]) then
    return
  end
  newest[task_id] = {g, entry, n, score}
end

if ARGV[1] == 'all' then
  for g = 1, #KEYS / 8 do
    local dead = redis.call('ZRANGE', key(g, DEAD), 0, -1, 'WITHSCORES')
    for j = 1, #dead, 2 do
      local entry = dead[j]
      if redis.call('HEXISTS', key(g, DEAD_LETTERS), entry) == 1 then
        local task_id, n = split_dead_letter_entry(entry)
        consider(task_id, g, entry, n, tonumber(dead[j + 1]))
      else
        redis.call('ZREM', key(g, DEAD), entry)  -- a stray entry without its dead letter
      end
    end
  end
else
  local seen = {}
  for a = 2, #ARGV do
    local task_id = ARGV[a]
    if not seen[task_id] then
      seen[task_id] = true
      ids[#ids + 1] = task_id
      for g = 1, #KEYS / 8 do
        local n = newest_dead_letter(key(g, DEAD_LETTERS), task_id)
        if n then
          local entry = dead_letter_entry(task_id, n)
          local score = tonumber(redis.call('ZSCORE', key(g, DEAD), entry) or '0')
          local best = newest[task_id]
          if best == nil or score > best[4] then newest[task_id] = {g, entry, n, score} end
        end
      end
    end
  end
end

local reply, back = {}, {}
for _, task_id in ipairs(ids) do
  local best = newest[task_id]
  local status = -1
  if best then
    local g, entry = best[1], best[2]
    if redis.call('HEXISTS', key(g, BODIES), task_id) == 1 then
      status = 0
    else
      local priority, count, _, body = unpack_dead_letter(redis.call('HGET', key(g, DEAD_LETTERS), entry))
      redis.call('ZREM', key(g, DEAD), entry)
      redis.call('HDEL', key(g, DEAD_LETTERS), entry)
      redis.call('HSET', key(g, BODIES), task_id, body)
      redis.call('HSET', key(g, PRIORITIES), task_id, priority)
      if count > 0 then redis.call('HSET', key(g, DELIVERIES), task_id, count) end
      redis.call('ZADD', key(g, READY), ready_score(priority, next_seqs(key(g, SEQ), 1, now_seq)), task_id)
      back[g] = (back[g] or 0) + 1
      status = 1
    end
  end
  reply[#reply + 1] = task_id
  reply[#reply + 1] = status
end
for g = 1, #KEYS / 8 do wake(key(g, WAKE), back[g] or 0) end
return reply
