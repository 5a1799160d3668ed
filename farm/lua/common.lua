-- The prelude of every farm script, prepended when the scripts are loaded.
-- The placeholders in double braces are filled from farm/keys.py, the one place that spells
-- the key schema (see it for each key's type). All times are Unix ms unless named _s.
local KEY = {
  job = '{{JOB_PREFIX}}', blocked = '{{BLOCKED_SUFFIX}}', queue = '{{QUEUE_PREFIX}}',
  tq = '{{TENANT_QUEUE_PREFIX}}', ring = '{{RING_PREFIX}}', credit = '{{CREDIT_SUFFIX}}',
  leases = '{{LEASES}}', fence = '{{FENCE}}', nodes = '{{NODES}}', paused = '{{PAUSED}}',
  tenant = '{{TENANT_PREFIX}}', active = '{{ACTIVE_SUFFIX}}', tenant_jobs = '{{JOBS_SUFFIX}}',
  last_ms = '{{LAST_MS_SUFFIX}}',
  usage = '{{USAGE_PREFIX}}', all_jobs = '{{ALL_JOBS}}', stats = '{{STATS}}',
  backlog = '{{BACKLOG}}', ledger = '{{LEDGER_PREFIX}}',
  events = '{{EVENTS}}', webhooks = '{{WEBHOOKS_SUFFIX}}', webhook_due = '{{WEBHOOK_DUE}}',
}
-- Upper bounds (s) of the lease-wait histogram buckets; scheduler/metrics.py reads them.
local WAIT_BUCKETS = {0.1, 0.5, 1, 5, 15, 60, 300, 1800}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function seconds(ms)
  return string.format('%.3f', ms / 1000)
end

local function split(text)
  local out = {}
  for part in string.gmatch(text, '[^,]+') do out[#out + 1] = part end
  return out
end

local function tenant_queue(tier, tenant)
  return KEY.tq .. tier .. ':' .. tenant
end

-- Put a job (already recorded) in its tier's view and its tenant's queue; a tenant
-- whose queue was empty joins the back of the tier's round-robin ring.
local function enqueue(id, tier, tenant, enqueued_ms, score)
  if redis.call('ZADD', KEY.queue .. tier, enqueued_ms, id) == 1 then
    redis.call('HINCRBYFLOAT', KEY.backlog, 'frames:' .. tier,
      redis.call('HGET', KEY.job .. id, 'frames') or 0)
  end
  redis.call('ZADD', tenant_queue(tier, tenant), score, id)
  if not redis.call('LPOS', KEY.ring .. tier, tenant) then
    redis.call('RPUSH', KEY.ring .. tier, tenant)
  end
end

-- Take a job out of the queues (the ring forgets drained tenants lazily, in lease).
local function dequeue(id, tier, tenant)
  if redis.call('ZREM', KEY.queue .. tier, id) == 1 then
    redis.call('HINCRBYFLOAT', KEY.backlog, 'frames:' .. tier,
      -tonumber(redis.call('HGET', KEY.job .. id, 'frames') or '0'))
  end
  redis.call('ZREM', tenant_queue(tier, tenant), id)
end

-- Put a job that was leased back in the queue, at its old place.
local function requeue(id)
  local j = redis.call('HMGET', KEY.job .. id, 'tier', 'tenant', 'enqueued_ms', 'score')
  enqueue(id, j[1], j[2], j[3], j[4])
end

-- The events stream keeps about this many entries: a dispatcher down long enough to
-- fall this far behind loses the oldest (scheduler/dispatch.py reads it).
local EVENTS_MAXLEN = 100000

-- A job's end is an event for the webhook dispatcher, only when someone listens (an
-- endpoint of its tenant, or the render's own webhook_url): a job nobody listens for
-- costs no write, and the dispatcher's consumer-group bookkeeping stays still.
local function emit(id, tenant, state, now, hook)
  if (hook and hook ~= '') or redis.call('EXISTS', KEY.tenant .. tenant .. KEY.webhooks) == 1 then
    redis.call('XADD', KEY.events, 'MAXLEN', '~', EVENTS_MAXLEN, '*',
      'job', id, 'tenant', tenant, 'state', state, 'at', seconds(now))
  end
end

local function is_leased(state)
  return state == 'leased' or state == 'running' or state == 'cancel_requested'
end

local settle  -- defined below; a render's chunks and the render settle each other

-- Stop a render's unfinished chunks (node/chunks.py): queued ones are canceled at once,
-- leased ones asked to stop (their nodes see it at the next heartbeat).
local function end_chunks(id, now)
  local ids = redis.call('HGET', KEY.job .. id, 'chunks')
  if not ids or ids == '' then return end
  for _, cid in ipairs(split(ids)) do
    local c = redis.call('HMGET', KEY.job .. cid, 'state', 'tier', 'tenant')
    if c[1] == 'queued' then
      dequeue(cid, c[2], c[3])
      settle(cid, 'canceled', now, nil)
    elseif c[1] == 'leased' or c[1] == 'running' then
      redis.call('HSET', KEY.job .. cid, 'state', 'cancel_requested')
    end
  end
end

-- A chunk failed past its attempts: its render cannot finish, so it fails now, wherever
-- it is (its node, if any, finds its lease gone at the next heartbeat).
local function fail_parent(parent, cid, err, now)
  local j = redis.call('HMGET', KEY.job .. parent, 'state', 'tier', 'tenant')
  if j[1] == 'queued' then
    dequeue(parent, j[2], j[3])
  elseif not is_leased(j[1]) then
    return
  end
  settle(parent, 'failed', now, 'chunk ' .. cid .. ' failed: ' .. tostring(err))
end

-- A job reached a terminal state: it no longer counts against its tenant's quota. A
-- chunk is the farm's own bookkeeping: no counters, no quota, no event for webhooks.
settle = function(id, state, now, err)
  local jkey = KEY.job .. id
  local tenant, tier, hook, kind, parent = unpack(redis.call('HMGET', jkey, 'tenant', 'tier',
    'webhook_url', 'kind', 'parent'))
  redis.call('HSET', jkey, 'state', state, 'finished_at', seconds(now))
  if err then redis.call('HSET', jkey, 'error', err) end
  redis.call('ZREM', KEY.leases, id)
  if kind == 'chunk' then
    if state == 'failed' then fail_parent(parent, id, err, now) end
    return
  end
  redis.call('HINCRBY', KEY.stats, 'done:' .. tier .. ':' .. state, 1)
  redis.call('SREM', KEY.tenant .. tenant .. KEY.active, id)
  emit(id, tenant, state, now, hook)
  if state ~= 'succeeded' then end_chunks(id, now) end
end

-- Count a lease and how long its job waited in the queue (the wait histogram).
local function count_lease(enqueued_ms, now)
  local wait = (now - tonumber(enqueued_ms)) / 1000
  local bucket = '+Inf'
  for _, bound in ipairs(WAIT_BUCKETS) do
    if wait <= bound then bucket = tostring(bound); break end
  end
  redis.call('HINCRBY', KEY.stats, 'leases', 1)
  redis.call('HINCRBY', KEY.stats, 'lease_wait_le:' .. bucket, 1)
  redis.call('HINCRBYFLOAT', KEY.stats, 'lease_wait_sum', wait)
end

-- A fence token that is not the job's current one, or a job no longer leased: refused.
local function check_fence(id, fence)
  local j = redis.call('HMGET', KEY.job .. id, 'state', 'fence')
  if j[2] ~= fence or not is_leased(j[1]) then
    return redis.error_reply('STALE fence ' .. fence .. ' for job ' .. id .. ' (current ' ..
      tostring(j[2]) .. ', state ' .. tostring(j[1]) .. ')')
  end
  return j[1]
end

-- Lease job `id` (still queued) to `node`: out of the queues, counted, fenced, expiring.
-- Returns {id, fence token}, what the lease scripts answer.
local function grant(id, node, ttl, now)
  local jkey = KEY.job .. id
  local j = redis.call('HMGET', jkey, 'tier', 'tenant', 'enqueued_ms')
  dequeue(id, j[1], j[2])
  count_lease(j[3], now)
  local fence = redis.call('INCR', KEY.fence)
  redis.call('HSET', jkey, 'state', 'leased', 'node', node, 'fence', fence,
    'leased_at', seconds(now), 'progress_at', seconds(now))
  redis.call('HINCRBY', jkey, 'attempts', 1)
  redis.call('ZADD', KEY.leases, now + ttl, id)
  return {id, fence}
end

-- (the script itself follows)
