-- Lease the next job for a node: strict tiers, FIFO inside a tier, fenced, expiring.
-- KEYS[1] leases          toonz:leases     (zset, job id -> deadline ms)
-- KEYS[2] fence counter   toonz:fence      (only grows)
-- KEYS[3] nodes           toonz:nodes      (zset, node id -> last seen ms)
-- KEYS[4..] tier queues, strongest tier first (toonz:queue:{tier})
-- ARGV[1] node id, ARGV[2] lease TTL ms, ARGV[3] job key prefix, ARGV[4] blocked-set suffix
-- Returns {job id, fence token} or nil.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node, ttl = ARGV[1], tonumber(ARGV[2])
local prefix, blocked_suffix = ARGV[3], ARGV[4]
redis.call('ZADD', KEYS[3], now, node)
local live = redis.call('ZCOUNT', KEYS[3], now - 3 * ttl, '+inf')
for q = 4, #KEYS do
  -- A bounded window: a blocked job at the head does not hide those behind it.
  local ids = redis.call('ZRANGE', KEYS[q], 0, 63)
  for _, id in ipairs(ids) do
    local bkey = prefix .. id .. blocked_suffix
    -- A node that failed this job skips it, unless every live node has failed it.
    local skip = redis.call('SISMEMBER', bkey, node) == 1 and redis.call('SCARD', bkey) < live
    if not skip then
      local jkey = prefix .. id
      redis.call('ZREM', KEYS[q], id)
      local fence = redis.call('INCR', KEYS[2])
      redis.call('HSET', jkey, 'state', 'leased', 'node', node, 'fence', fence,
        'leased_at', string.format('%.3f', now / 1000))
      redis.call('HINCRBY', jkey, 'attempts', 1)
      redis.call('ZADD', KEYS[1], now + ttl, id)
      return {id, fence}
    end
  end
end
return nil
