-- Lease one queued chunk by id, for the node that holds its render (the parent): while it
-- waits for its chunks, that node renders those nobody took, so that a render never
-- waits on a farm whose only node is the one waiting. The lease is the one lease.lua
-- grants (fenced, expiring, an attempt counted); a node that failed the chunk skips it,
-- unless every live node has failed it.
-- ARGV[1] chunk id, ARGV[2] the render's fence token (held by the caller), ARGV[3] node id,
-- ARGV[4] lease TTL ms
-- Returns {chunk id, fence token}, or nil when the chunk is not queued (or is blocked here);
-- an error reply starting with STALE when the caller no longer holds the render.
local cid, node, ttl = ARGV[1], ARGV[3], tonumber(ARGV[4])
local ckey = KEY.job .. cid
local c = redis.call('HMGET', ckey, 'state', 'kind', 'parent')
if c[2] ~= 'chunk' then
  return redis.error_reply('INVALID job ' .. cid .. ' is not a chunk')
end
local held = check_fence(c[3], ARGV[2])
if type(held) == 'table' then return held end
if c[1] ~= 'queued' then return nil end
local now = now_ms()
redis.call('ZADD', KEY.nodes, now, node)
local blocked = ckey .. KEY.blocked
if redis.call('SISMEMBER', blocked, node) == 1 and
    redis.call('SCARD', blocked) < redis.call('ZCOUNT', KEY.nodes, now - 3 * ttl, '+inf') then
  return nil
end
return grant(cid, node, ttl, now)
