-- Deletes a conversation; returns 1 if it existed (its hash did), 0 otherwise.
--
-- KEYS[1]  the conversation's hash
-- KEYS[2]  the conversation's turns
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return existed
