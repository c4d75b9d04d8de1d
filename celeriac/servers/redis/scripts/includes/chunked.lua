--[[ chunked: variadic commands over long lists without overflowing Lua's C stack
(unpack() of more than ~8000 values fails). CHUNK is even so ZADD pairs stay whole.
]]
local CHUNK = 1000

local function call_chunked(command, key, items)
  for i = 1, #items, CHUNK do
    redis.call(command, key, unpack(items, i, math.min(i + CHUNK - 1, #items)))
  end
end
