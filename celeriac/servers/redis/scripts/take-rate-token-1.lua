--[[ take-rate-token-1: take one token from a bucket shared by every worker.

KEYS: the bucket (a hash: tokens, updated_at_ms)
ARGV: rate per second, capacity
Returns "0" when a token was taken, else the seconds until one is free (as a string:
Lua numbers in replies are cut to integers).

The bucket starts full and refills at the rate up to the capacity, in the server's
clock. It expires once it would be full again, so unused buckets leave no keys behind.
Atomic as a script: two workers never take the same token.
]]
--- @include "clock"

local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local now_ms = server_clock()
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated_at_ms')
local tokens = capacity
if state[1] then
  tokens = math.min(capacity, tonumber(state[1]) + (now_ms - tonumber(state[2])) / 1000 * rate)
end
local wait_s = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait_s = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'updated_at_ms', now_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait_s)
