-- Removes every entry currently carrying a tag, and the tag set; returns how many entries
-- were removed.
--
-- KEYS[1]  the tag set
-- ARGV[1]  the namespace prefix of entry keys (entry key = ARGV[1] .. member)
-- ARGV[2]  the prefix of entry tag lists (tag list key = ARGV[2] .. member)
--
-- A member whose tag list no longer names this tag was re-set with other tags since it was
-- linked: that newer value stays. A member whose entry expired counts as nothing removed.
-- Entries removed here are also unlinked from their other tags, so a later value under the
-- same key is not removed through a tag it does not carry.
--
-- This touches keys it cannot declare in KEYS (they are only known from the set's members),
-- which is fine on a standalone Redis or a primary with replicas, not on Redis Cluster.
local tag = KEYS[1]
local removed = 0
for _, member in ipairs(redis.call('SMEMBERS', tag)) do
  local tag_list = ARGV[2] .. member
  if redis.call('SISMEMBER', tag_list, tag) == 1 then
    removed = removed + redis.call('DEL', ARGV[1] .. member)
    for _, other in ipairs(redis.call('SMEMBERS', tag_list)) do
      if other ~= tag then
        redis.call('SREM', other, member)
      end
    end
    redis.call('DEL', tag_list)
  end
end
redis.call('DEL', tag)
return removed
