-- Cancel a job: a queued one at once; a leased one asks its node to stop (the node
-- sees 'cancel_requested' at its next heartbeat and completes as canceled). A render split
-- into chunks stops them too, at once: none waits for its parent's node to notice.
-- ARGV[1] job id
-- Returns the job's new state; an error reply starting with TERMINAL if it had ended.
local id = ARGV[1]
local jkey = KEY.job .. id
local j = redis.call('HMGET', jkey, 'state', 'tier', 'tenant')
if j[1] == 'queued' then
  dequeue(id, j[2], j[3])
  settle(id, 'canceled', now_ms(), nil)
  return 'canceled'
end
if is_leased(j[1]) then
  redis.call('HSET', jkey, 'state', 'cancel_requested')
  end_chunks(id, now_ms())
  return 'cancel_requested'
end
return redis.error_reply('TERMINAL job ' .. id .. ' is ' .. tostring(j[1]))
