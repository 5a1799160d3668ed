-- Finish a leased job exactly once: success charges usage (counters and the ledger),
-- except for a chunk of a longer render (kind 'chunk'): its render is charged once, when
-- it completes. Failure retries or fails.
-- A release (a node forced to stop) re-queues the job without counting the attempt.
-- ARGV[1] job id, ARGV[2] fence token, ARGV[3] 'succeeded', 'failed' or 'released', ARGV[4] error,
-- ARGV[5] max attempts, ARGV[6] artifact names (comma separated), ARGV[7] node id,
-- ARGV[8] month (YYYY-MM) the usage is charged to
-- Returns the job's new state; an error reply starting with STALE for an old token.
local id = ARGV[1]
local state = check_fence(id, ARGV[2])
if type(state) == 'table' then return state end
local jkey = KEY.job .. id
local now = now_ms()
if ARGV[3] == 'succeeded' then
  settle(id, 'succeeded', now, '')
  redis.call('HSET', jkey, 'progress', 1, 'artifacts', ARGV[6])
  local j = redis.call('HMGET', jkey, 'tenant', 'duration_s', 'price_cents', 'quality', 'kind')
  if j[5] == 'chunk' then return 'succeeded' end
  local usage = KEY.usage .. j[1] .. ':' .. ARGV[8]
  redis.call('HINCRBY', usage, 'renders', 1)
  redis.call('HINCRBYFLOAT', usage, 'seconds', j[2] or 0)
  redis.call('HINCRBY', usage, 'cost_cents', j[3] or 0)
  -- The ledger (scheduler/billing.py): one entry per charge, never rewritten. Its id is
  -- the server's ms clock, so a month's entries are one XRANGE.
  redis.call('XADD', KEY.ledger .. j[1], '*', 'job', id, 'seconds', j[2] or '0',
    'cost_cents', j[3] or '0', 'quality', j[4] or '', 'at', now)
  return 'succeeded'
end
if state == 'cancel_requested' then
  settle(id, 'canceled', now, nil)
  return 'canceled'
end
if ARGV[3] == 'released' then
  redis.call('ZREM', KEY.leases, id)
  redis.call('HINCRBY', jkey, 'attempts', -1)
  redis.call('HSET', jkey, 'state', 'queued', 'node', '')
  requeue(id)
  return 'queued'
end
redis.call('SADD', jkey .. KEY.blocked, ARGV[7])
if tonumber(redis.call('HGET', jkey, 'attempts') or '0') >= tonumber(ARGV[5]) then
  settle(id, 'failed', now, ARGV[4])
  return 'failed'
end
redis.call('ZREM', KEY.leases, id)
redis.call('HSET', jkey, 'state', 'queued', 'node', '', 'error', ARGV[4])
requeue(id)
return 'queued'
