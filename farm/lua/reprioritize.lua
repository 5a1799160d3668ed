-- Change a queued job's priority (its place in its tenant's queue).
-- ARGV[1] job id, ARGV[2] new priority, ARGV[3] new queue score
-- Returns 1; an error reply starting with NOTQUEUED if the job is not queued.
local id = ARGV[1]
local jkey = KEY.job .. id
local j = redis.call('HMGET', jkey, 'state', 'tier', 'tenant')
if j[1] ~= 'queued' then
  return redis.error_reply('NOTQUEUED job ' .. id .. ' is ' .. tostring(j[1]))
end
redis.call('HSET', jkey, 'priority', ARGV[2], 'score', ARGV[3])
redis.call('ZADD', tenant_queue(j[2], j[3]), 'XX', ARGV[3], id)
return 1
