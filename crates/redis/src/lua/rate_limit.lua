-- GCRA (generic cell rate algorithm) check-and-take, the same arithmetic as the governor crate
-- behind bqai's in-process limiter, on Redis' clock so replicas with skewed clocks agree.
--
-- KEYS[1]  the key's state: its theoretical arrival time (TAT) in microseconds
-- ARGV[1]  cost, 1 <= cost <= limit (the caller answers other cases without Redis)
-- ARGV[2]  limit per minute, >= 1
--
-- Returns {allowed (1 or 0), remaining units, microseconds until the request would fit}.
--
-- Times are integers in microseconds held in Lua doubles: exact below 2^53 us (285 years).

-- Redis < 5 replicates scripts verbatim and refuses writes after TIME unless told to replicate
-- effects; later versions do that always and keep this as a no-op.
if redis.replicate_commands then
  redis.replicate_commands()
end

local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- One unit refills every t; the bucket holds `limit` units, i.e. the TAT may run ahead of
-- now by up to tau + t.
local t = math.max(1, math.floor(60000000 / limit))
local tau = t * (limit - 1)
local extra = t * (cost - 1)

local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = math.max(tonumber(stored), now)
end

local earliest = tat + extra - tau
if now < earliest then
  local wait = earliest - now
  local available = math.floor(math.max(cost * t - wait, 0) / t)
  return {0, math.min(available, limit), wait}
end

local new_tat = tat + t + extra
-- The state is worthless once the bucket is full again; let it expire then.
local ttl_ms = math.max(1, math.ceil((new_tat - now) / 1000))
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
local remaining = math.floor(math.min(now + tau + t - new_tat, tau + t) / t)
return {1, remaining, 0}
