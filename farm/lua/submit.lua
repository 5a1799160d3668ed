-- Admit and enqueue a job atomically: quota check, job record, tier queue.
-- KEYS[1] job hash        toonz:job:{id}
-- KEYS[2] tier queue      toonz:queue:{tier}            (zset, score = enqueue ms)
-- KEYS[3] tenant jobs     toonz:tenant:{t}:jobs         (zset, score = created ms)
-- KEYS[4] tenant active   toonz:tenant:{t}:active       (set of non-terminal jobs)
-- KEYS[5] usage           toonz:usage:{t}:{YYYY-MM}     (hash: renders, seconds, cost_cents)
-- KEYS[6] all jobs        toonz:jobs                    (zset, score = created ms)
-- ARGV[1] job id, ARGV[2] monthly quota (-1: unlimited), ARGV[3] created ms,
-- ARGV[4..] field, value pairs of the job record
-- Returns 1, or an error reply starting with QUOTA.
local quota = tonumber(ARGV[2])
if quota >= 0 then
  local used = tonumber(redis.call('HGET', KEYS[5], 'renders') or '0')
  local active = redis.call('SCARD', KEYS[4])
  if used + active >= quota then
    return redis.error_reply('QUOTA ' .. used .. ' renders used and ' .. active ..
      ' in progress of ' .. quota .. ' this month')
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('EXISTS job ' .. ARGV[1])
end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', 0, 'enqueued_ms', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return 1
