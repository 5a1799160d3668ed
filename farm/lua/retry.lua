-- Re-queue a failed or canceled job (an operator's retry): fresh attempts, no blocked
-- nodes, no error, back in its tier and its tenant's queue as a new arrival.
-- ARGV[1] job id, ARGV[2] enqueue ms, ARGV[3] queue score (farm.scheduling)
-- Returns 'queued'; an error reply starting with NOTFOUND, or NOTRETRYABLE and the state.
local id = ARGV[1]
local jkey = KEY.job .. id
local j = redis.call('HMGET', jkey, 'state', 'tier', 'tenant')
if not j[1] then
  return redis.error_reply('NOTFOUND job ' .. id)
end
if j[1] ~= 'failed' and j[1] ~= 'canceled' then
  return redis.error_reply('NOTRETRYABLE ' .. j[1])
end
redis.call('DEL', jkey .. KEY.blocked)
redis.call('HSET', jkey, 'state', 'queued', 'attempts', 0, 'error', '', 'node', '', 'progress', 0,
  'started_at', '', 'finished_at', '', 'artifacts', '', 'enqueued_ms', ARGV[2], 'score', ARGV[3])
redis.call('HINCRBY', KEY.stats, 'retried:' .. j[2], 1)
redis.call('SADD', KEY.tenant .. j[3] .. KEY.active, id)
enqueue(id, j[2], j[3], ARGV[2], ARGV[3])
return 'queued'
