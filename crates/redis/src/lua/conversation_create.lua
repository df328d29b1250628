-- Stores a new conversation unless its id is taken; returns 1 if stored, 0 if it exists.
--
-- KEYS[1]  the conversation's hash (principal, dataset, created_at, updated_at)
-- KEYS[2]  the conversation's turns, a list of JSON documents, oldest first
-- ARGV[1]  the time to live in milliseconds
-- ARGV[2]  n, the number of hash arguments that follow (field, value, field, value, ...)
-- ARGV[3 .. 2+n]  the hash's fields and values (absent fields are None)
-- ARGV[3+n ..]    the turns, oldest first (usually none)
local conversation, turns = KEYS[1], KEYS[2]
if redis.call('EXISTS', conversation) == 1 then
  return 0
end
local ttl = ARGV[1]
local n = tonumber(ARGV[2])
-- Turns left behind by a conversation whose hash alone was evicted must not be inherited.
redis.call('DEL', turns)
redis.call('HSET', conversation, unpack(ARGV, 3, 2 + n))
redis.call('PEXPIRE', conversation, ttl)
-- One RPUSH per turn: unpacking them all at once would hit Lua's stack limit on a long list.
for i = 3 + n, #ARGV do
  redis.call('RPUSH', turns, ARGV[i])
end
if #ARGV > 2 + n then
  redis.call('PEXPIRE', turns, ttl)
end
return 1
