-- Admit and enqueue a job atomically: quota check, job record, queues.
-- ARGV[1] job id, ARGV[2] tenant id, ARGV[3] tier, ARGV[4] monthly quota (-1: none),
-- ARGV[5] month (YYYY-MM), ARGV[6] created ms, ARGV[7] queue score (farm.scheduling),
-- ARGV[8..] field, value pairs of the job record
-- Returns 1, or an error reply starting with QUOTA.
local id, tenant, tier = ARGV[1], ARGV[2], ARGV[3]
local quota, created, score = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
local active_key = KEY.tenant .. tenant .. KEY.active
if quota >= 0 then
  local used = tonumber(redis.call('HGET', KEY.usage .. tenant .. ':' .. ARGV[5], 'renders') or '0')
  local active = redis.call('SCARD', active_key)
  if used + active >= quota then
    return redis.error_reply('QUOTA ' .. used .. ' renders used and ' .. active ..
      ' in progress of ' .. quota .. ' this month')
  end
end
local jkey = KEY.job .. id
if redis.call('EXISTS', jkey) == 1 then
  return redis.error_reply('EXISTS job ' .. id)
end
-- A tenant's jobs keep the order they were submitted in, even within one millisecond
-- (a batch) or across schedulers whose clocks differ: each is enqueued at least 1 ms
-- after the tenant's last (queues break ties by job id, which is random).
local last_key = KEY.tenant .. tenant .. KEY.last_ms
local last = tonumber(redis.call('GET', last_key) or '0')
if created <= last then
  score = score + (last + 1 - created)
  created = last + 1
end
redis.call('SET', last_key, created)
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', jkey, unpack(fields))
redis.call('HSET', jkey, 'state', 'queued', 'attempts', 0, 'enqueued_ms', created, 'score', score)
redis.call('HINCRBY', KEY.stats, 'submitted:' .. tier, 1)
enqueue(id, tier, tenant, created, score)
redis.call('ZADD', KEY.tenant .. tenant .. KEY.tenant_jobs, created, id)
redis.call('ZADD', KEY.all_jobs, created, id)
redis.call('SADD', active_key, id)
return 1
