-- Stores one cache entry and links it to its tags, atomically.
--
-- KEYS[1]   the entry
-- KEYS[2]   the entry's tag list (a set of tag-set keys), so a later set or invalidation can
--           tell which tag sets currently point at this entry
-- KEYS[3..] the tag sets to link the entry into
-- ARGV[1]   the member name of the entry in tag sets (the caller's key, without namespace)
-- ARGV[2]   the encoded value
-- ARGV[3]   the entry's TTL in milliseconds
-- ARGV[4]   how much longer than the entry the tag bookkeeping lives, in milliseconds
--
-- Tag sets and tag lists outlive the entry by ARGV[4] so they never vanish while the entry is
-- readable; the invalidation script ignores links whose entry is already gone.
local entry, tag_list = KEYS[1], KEYS[2]
local member = ARGV[1]
local ttl = tonumber(ARGV[3])
local keep = ttl + tonumber(ARGV[4])

local new_tags = {}
for i = 3, #KEYS do
  new_tags[KEYS[i]] = true
end
-- Unlink the value being replaced from tags the new value does not carry, so invalidating
-- one of those never removes the new value.
for _, old_tag in ipairs(redis.call('SMEMBERS', tag_list)) do
  if not new_tags[old_tag] then
    redis.call('SREM', old_tag, member)
  end
end
redis.call('DEL', tag_list)

redis.call('SET', entry, ARGV[2], 'PX', ttl)
for i = 3, #KEYS do
  local tag = KEYS[i]
  redis.call('SADD', tag, member)
  redis.call('SADD', tag_list, tag)
  -- -1 (no expiry yet: the set was just created) and -2 also compare below `keep`.
  if redis.call('PTTL', tag) < keep then
    redis.call('PEXPIRE', tag, keep)
  end
end
if #KEYS > 2 then
  redis.call('PEXPIRE', tag_list, keep)
end
return 1
