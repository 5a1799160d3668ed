-- Re-queue jobs whose lease expired; fail those past their maximum attempts.
-- KEYS[1] leases   toonz:leases (zset, job id -> deadline ms)
-- ARGV[1] job key prefix, ARGV[2] queue key prefix, ARGV[3] tenant key prefix,
-- ARGV[4] tenant active-set suffix, ARGV[5] max attempts, ARGV[6] most jobs to reap
-- Returns a flat list: job id, new state, job id, new state, ...
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now = string.format('%.3f', now_ms / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[6]))
local out = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local jkey = ARGV[1] .. id
  local state = redis.call('HGET', jkey, 'state')
  if state == 'leased' or state == 'running' or state == 'cancel_requested' then
    local job = redis.call('HMGET', jkey, 'tenant', 'tier', 'attempts', 'enqueued_ms', 'node')
    local active = ARGV[3] .. job[1] .. ARGV[4]
    local new
    if state == 'cancel_requested' then
      new = 'canceled'
      redis.call('HSET', jkey, 'state', new, 'finished_at', now)
      redis.call('SREM', active, id)
    elseif tonumber(job[3] or '0') >= tonumber(ARGV[5]) then
      new = 'failed'
      redis.call('HSET', jkey, 'state', new, 'finished_at', now, 'error',
        'lease expired ' .. job[3] .. ' times (last node ' .. tostring(job[5]) .. ' stopped heartbeating)')
      redis.call('SREM', active, id)
    else
      new = 'queued'
      redis.call('HSET', jkey, 'state', new, 'node', '',
        'error', 'lease expired on node ' .. tostring(job[5]))
      redis.call('ZADD', ARGV[2] .. job[2], job[4], id)
    end
    out[#out + 1] = id
    out[#out + 1] = new
  end
end
return out
