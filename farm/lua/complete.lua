-- Finish a leased job exactly once: success charges usage, failure retries or fails.
-- KEYS[1] job hash        toonz:job:{id}
-- KEYS[2] leases          toonz:leases
-- KEYS[3] tenant active   toonz:tenant:{t}:active
-- KEYS[4] usage           toonz:usage:{t}:{YYYY-MM}
-- KEYS[5] tier queue      toonz:queue:{tier}
-- KEYS[6] blocked nodes   toonz:job:{id}:blocked
-- ARGV[1] job id, ARGV[2] fence token, ARGV[3] 'succeeded' or 'failed', ARGV[4] error text,
-- ARGV[5] max attempts, ARGV[6] artifact names (comma separated), ARGV[7] node id
-- Returns the job's new state; an error reply starting with STALE for an old token.
local state = redis.call('HGET', KEYS[1], 'state')
local fence = redis.call('HGET', KEYS[1], 'fence')
if fence ~= ARGV[2] or (state ~= 'leased' and state ~= 'running' and state ~= 'cancel_requested') then
  return redis.error_reply('STALE fence ' .. ARGV[2] .. ' for job ' .. ARGV[1] ..
    ' (current ' .. tostring(fence) .. ', state ' .. tostring(state) .. ')')
end
local t = redis.call('TIME')
local now = string.format('%.3f', tonumber(t[1]) + tonumber(t[2]) / 1000000)
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[3] == 'succeeded' then
  redis.call('HSET', KEYS[1], 'state', 'succeeded', 'finished_at', now, 'progress', 1,
    'artifacts', ARGV[6], 'error', '')
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('HINCRBY', KEYS[4], 'renders', 1)
  redis.call('HINCRBYFLOAT', KEYS[4], 'seconds', redis.call('HGET', KEYS[1], 'duration_s') or 0)
  redis.call('HINCRBY', KEYS[4], 'cost_cents', redis.call('HGET', KEYS[1], 'price_cents') or 0)
  return 'succeeded'
end
if state == 'cancel_requested' then
  redis.call('HSET', KEYS[1], 'state', 'canceled', 'finished_at', now)
  redis.call('SREM', KEYS[3], ARGV[1])
  return 'canceled'
end
redis.call('SADD', KEYS[6], ARGV[7])
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', now, 'error', ARGV[4])
  redis.call('SREM', KEYS[3], ARGV[1])
  return 'failed'
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'node', '', 'error', ARGV[4])
redis.call('ZADD', KEYS[5], redis.call('HGET', KEYS[1], 'enqueued_ms'), ARGV[1])
return 'queued'
