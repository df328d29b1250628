-- Reads a conversation in one consistent step, without touching its time to live. Returns
-- {HGETALL of the hash, the turns oldest first}, or nil if it does not exist (or expired).
--
-- KEYS[1]  the conversation's hash
-- KEYS[2]  the conversation's turns
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  return false
end
return {fields, redis.call('LRANGE', KEYS[2], 0, -1)}
