-- Appends a turn to a live conversation, atomically: keeps at most `max_turns` (dropping the
-- oldest), sets the dataset when the conversation has none, moves updated_at on and restarts
-- the time to live of both keys. Returns the updated conversation as
-- {HGETALL of the hash, the turns oldest first}, or nil if it does not exist (or expired).
--
-- KEYS[1]  the conversation's hash
-- KEYS[2]  the conversation's turns
-- ARGV[1]  the time to live in milliseconds
-- ARGV[2]  the turn (JSON)
-- ARGV[3]  updated_at
-- ARGV[4]  max_turns, >= 1
-- ARGV[5]  the dataset, if the caller knows it (optional)
local conversation, turns = KEYS[1], KEYS[2]
if redis.call('EXISTS', conversation) == 0 then
  return false
end
local ttl = ARGV[1]
local keep = tonumber(ARGV[4])
if ARGV[5] then
  redis.call('HSETNX', conversation, 'dataset', ARGV[5])
end
redis.call('HSET', conversation, 'updated_at', ARGV[3])
redis.call('RPUSH', turns, ARGV[2])
if redis.call('LLEN', turns) > keep then
  redis.call('LTRIM', turns, -keep, -1)
end
redis.call('PEXPIRE', conversation, ttl)
-- The list may have just been created by the RPUSH: it needs its deadline too.
redis.call('PEXPIRE', turns, ttl)
return {redis.call('HGETALL', conversation), redis.call('LRANGE', turns, 0, -1)}
