--[[ once: a call runs at most once, however often the client sends it.

A script holding the line "--- @once" is wrapped in this by load_scripts()
(connection.py): the script becomes the function at the body line below. Its caller
(RedisConnection.run) appends two values the script's own KEYS and ARGV do not count, and
that the script does not see:
  KEYS[#KEYS]  the call's key, {P:Q}:call:<id>: <id> is new for each call of a broker
               method and the same in every retry of that call
  ARGV[#ARGV]  how long to keep the reply, ms: longer than a client goes on retrying

A call whose key holds a reply already ran: this is a retry sent because the reply was
lost (a connection cut after the server ran the script). It gets the first reply and
changes nothing, so a publish is not stored twice nor refused as its own duplicate, and
an ack, release, retry or dead-letter is not refused as if the lease were taken over. A
refusal is kept too: the retry of a refused call is refused alike. Atomic with the script.
]]
local once_key, once_ms = KEYS[#KEYS], ARGV[#ARGV]
local once_reply = redis.call('GET', once_key)
if once_reply then return cmsgpack.unpack(once_reply) end
KEYS[#KEYS] = nil
ARGV[#ARGV] = nil
once_reply = (function()
--- @body
end)()
redis.call('SET', once_key, cmsgpack.pack(once_reply), 'PX', once_ms)
return once_reply
