--[[ ready: the order of a queue's ready set, and waking idle reservers.

A ready score puts priority 9 first and keeps FIFO within a priority:
  (9 - priority) * 2^49 + 2^48 + seq   for published, promoted and reclaimed messages
  (9 - priority) * 2^49 + 2^48 - seq   for released ones: back at the head, newest first
seq comes from next_seqs(): strictly increasing per queue and never behind the server
clock, so queues reserved together interleave roughly by age. Every score stays below
2^53, where doubles (Lua numbers, sorted-set scores) are exact.
]]
local PRIORITY_BAND = 562949953421312  -- 2^49
local HEAD_OFFSET = 281474976710656    -- 2^48
local WAKE_TOKENS_MAX = 64

local function ready_score(priority, seq)
  return (9 - priority) * PRIORITY_BAND + HEAD_OFFSET + seq
end

local function head_score(priority, seq)
  return (9 - priority) * PRIORITY_BAND + HEAD_OFFSET - seq
end

-- The last sequence number of a queue, raised to the clock's floor.
local function last_seq(seq_key, now_seq)
  return math.max(tonumber(redis.call('GET', seq_key) or '0'), now_seq - 1)
end

-- Reserve n sequence numbers of one queue; returns the first.
local function next_seqs(seq_key, n, now_seq)
  local first = last_seq(seq_key, now_seq) + 1
  redis.call('SET', seq_key, first + n - 1)
  return first
end

-- One token per newly ready message (capped): each idle worker blocked in BLPOP on the
-- key takes one. Tokens nobody waited for are cleared by the next empty reserve.
local function wake(wake_key, n)
  if n <= 0 then return end
  if n > WAKE_TOKENS_MAX then n = WAKE_TOKENS_MAX end
  local tokens = {}
  for i = 1, n do tokens[i] = '1' end
  if redis.call('LPUSH', wake_key, unpack(tokens)) > WAKE_TOKENS_MAX then
    redis.call('LTRIM', wake_key, 0, WAKE_TOKENS_MAX - 1)
  end
end
