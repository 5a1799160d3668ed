-- Renew a lease and record progress; refused for a stale fence token.
-- KEYS[1] job hash   toonz:job:{id}
-- KEYS[2] leases     toonz:leases
-- KEYS[3] nodes      toonz:nodes
-- ARGV[1] job id, ARGV[2] fence token, ARGV[3] lease TTL ms, ARGV[4] progress 0..1 ('' keeps it),
-- ARGV[5] node id
-- Returns the job's state after the call (a node stops on 'cancel_requested').
local state = redis.call('HGET', KEYS[1], 'state')
local fence = redis.call('HGET', KEYS[1], 'fence')
if fence ~= ARGV[2] or (state ~= 'leased' and state ~= 'running' and state ~= 'cancel_requested') then
  return redis.error_reply('STALE fence ' .. ARGV[2] .. ' for job ' .. ARGV[1] ..
    ' (current ' .. tostring(fence) .. ', state ' .. tostring(state) .. ')')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZADD', KEYS[3], now, ARGV[5])
if state == 'leased' then
  state = 'running'
  redis.call('HSET', KEYS[1], 'state', state, 'started_at', string.format('%.3f', now / 1000))
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'progress', ARGV[4])
end
return state
