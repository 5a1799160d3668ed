-- Renew a lease and record progress; refused for a stale fence token.
-- ARGV[1] job id, ARGV[2] fence token, ARGV[3] lease TTL ms,
-- ARGV[4] progress 0..1 ('' keeps it), ARGV[5] node id
-- Returns the job's state after the call (a node stops on 'cancel_requested').
local id = ARGV[1]
local state = check_fence(id, ARGV[2])
if type(state) == 'table' then return state end
local jkey = KEY.job .. id
local now = now_ms()
redis.call('ZADD', KEY.leases, now + tonumber(ARGV[3]), id)
redis.call('ZADD', KEY.nodes, now, ARGV[5])
if state == 'leased' then
  state = 'running'
  redis.call('HSET', jkey, 'state', state, 'started_at', seconds(now))
end
if ARGV[4] ~= '' and ARGV[4] ~= redis.call('HGET', jkey, 'progress') then
  -- progress_at: when progress last moved (the reaper fails stalled jobs)
  redis.call('HSET', jkey, 'progress', ARGV[4], 'progress_at', seconds(now))
end
return state
