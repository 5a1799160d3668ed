-- Re-queue jobs whose lease expired, and jobs whose progress stalled while their node
-- kept heartbeating; fail those past their maximum attempts.
-- ARGV[1] max attempts, ARGV[2] most jobs to reap, ARGV[3] stall limit ms (0: off)
-- Returns a flat list: job id, new state, job id, new state, ...
local max_attempts, batch, stall = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local out = {}

local function reap(id, why)
  local jkey = KEY.job .. id
  local j = redis.call('HMGET', jkey, 'state', 'attempts', 'node')
  if not is_leased(j[1]) then
    redis.call('ZREM', KEY.leases, id)
    return
  end
  local new
  if j[1] == 'cancel_requested' then
    new = 'canceled'
    settle(id, new, now, nil)
  elseif tonumber(j[2] or '0') >= max_attempts then
    new = 'failed'
    settle(id, new, now, why .. ' on node ' .. tostring(j[3]) .. ' (attempt ' .. j[2] .. ' of ' ..
      max_attempts .. ')')
  else
    new = 'queued'
    redis.call('ZREM', KEY.leases, id)
    redis.call('HSET', jkey, 'state', new, 'node', '', 'error', why .. ' on node ' .. tostring(j[3]))
    if why == 'progress stalled' then redis.call('SADD', jkey .. KEY.blocked, j[3]) end
    requeue(id)
  end
  out[#out + 1] = id
  out[#out + 1] = new
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEY.leases, '-inf', now, 'LIMIT', 0, batch)) do
  reap(id, 'lease expired')
end
if stall > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEY.leases, 0, batch - 1)) do
    local at = tonumber(redis.call('HGET', KEY.job .. id, 'progress_at') or '0') * 1000
    if at > 0 and now - at > stall then reap(id, 'progress stalled') end
  end
end
return out
