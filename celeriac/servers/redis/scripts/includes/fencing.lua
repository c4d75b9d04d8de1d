--[[ fencing: is a delivery still the current one?

A worker holds a message while the message has a lease and its delivery count equals the
worker's fencing token. Once the lease lapsed and another reserve took it, the count went
up, so the old holder's ack, renew, retry or dead-letter is refused.
]]
local function is_held(leases, deliveries, task_id, token)
  if not redis.call('ZSCORE', leases, task_id) then return false end
  return redis.call('HGET', deliveries, task_id) == token
end
