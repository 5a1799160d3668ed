-- Split a leased render into chunks (node/chunks.py), atomically and once.
-- Each chunk is a job "{id}.c{k}" (kind 'chunk') with the render's fields (what rebuilds
-- its scene), frames start..stop, no price, no webhook; queued in the render's tier, in its
-- tenant's queue ahead of everything else there (score: the render's, less ARGV[3], which
-- is more than any job's score), so its chunks run before the tenant's next render. It is
-- not in the tenant's quota (active set) nor in any listing.
-- Idempotent: a render split before (its node died, and another leased it) keeps its
-- chunks; those that ended without succeeding (a retried render) are queued afresh.
-- ARGV[1] render id, ARGV[2] fence token, ARGV[3] score offset,
-- ARGV[4] frame ranges 'start:stop,start:stop,...', contiguous from 0
-- Returns the chunk ids in order; an error reply starting with STALE for an old token,
-- CANCELED for a render being canceled, INVALID for a chunk or bad ranges.
local id, fence, offset = ARGV[1], ARGV[2], tonumber(ARGV[3])
local state = check_fence(id, fence)
if type(state) == 'table' then return state end
local jkey = KEY.job .. id
if state == 'cancel_requested' then
  return redis.error_reply('CANCELED job ' .. id .. ' is being canceled')
end
local j = redis.call('HMGET', jkey, 'kind', 'chunks', 'tier', 'tenant', 'score', 'frames', 'duration_s')
if j[1] == 'chunk' then
  return redis.error_reply('INVALID job ' .. id .. ' is a chunk itself')
end
local tier, tenant = j[3], j[4]
local now = now_ms()
local base = tonumber(j[5]) - offset
-- Scores are written as whole numbers: Lua would print 16 digits as %.14g and lose the order.
local function score(k)
  return string.format('%.0f', base + k - 1)
end

if j[2] and j[2] ~= '' then
  local ids = split(j[2])
  for k, cid in ipairs(ids) do
    local ckey = KEY.job .. cid
    local cstate = redis.call('HGET', ckey, 'state')
    if cstate == 'failed' or cstate == 'canceled' then
      redis.call('DEL', ckey .. KEY.blocked)
      redis.call('HSET', ckey, 'state', 'queued', 'attempts', 0, 'error', '', 'node', '',
        'progress', 0, 'started_at', '', 'finished_at', '', 'artifacts', '',
        'enqueued_ms', now, 'score', score(k))
      enqueue(cid, tier, tenant, now, score(k))
    end
  end
  return ids
end

-- Fields of the render that are its own, not its chunks'.
local OWN = {state = 1, attempts = 1, node = 1, fence = 1, progress = 1, progress_at = 1,
  leased_at = 1, started_at = 1, finished_at = 1, error = 1, artifacts = 1, chunks = 1,
  enqueued_ms = 1, score = 1, webhook_url = 1, batch = 1, audio = 1, price_cents = 1}
local copy = {}
local all = redis.call('HGETALL', jkey)
for i = 1, #all, 2 do
  if not OWN[all[i]] then
    copy[#copy + 1] = all[i]
    copy[#copy + 1] = all[i + 1]
  end
end

local ranges = split(ARGV[4])
local expect = 0
for _, r in ipairs(ranges) do
  local a, b = string.match(r, '^(%d+):(%d+)$')
  if not a or tonumber(a) ~= expect or tonumber(b) <= tonumber(a) then
    return redis.error_reply('INVALID frame ranges ' .. ARGV[4])
  end
  expect = tonumber(b)
end
local total = expect
if #ranges < 1 then return redis.error_reply('INVALID no frame ranges') end
local duration = tonumber(j[7] or '0') or 0

local ids = {}
for k, r in ipairs(ranges) do
  local a, b = string.match(r, '^(%d+):(%d+)$')
  local frames = tonumber(b) - tonumber(a)
  local cid = id .. '.c' .. (k - 1)
  local ckey = KEY.job .. cid
  redis.call('DEL', ckey, ckey .. KEY.blocked)
  redis.call('HSET', ckey, unpack(copy))
  redis.call('HSET', ckey, 'id', cid, 'kind', 'chunk', 'parent', id, 'frame_start', a,
    'frame_stop', b, 'frames', frames, 'duration_s', string.format('%.3f', duration * frames / total),
    'price_cents', 0, 'created_at', seconds(now), 'state', 'queued', 'attempts', 0,
    'enqueued_ms', now, 'score', score(k))
  enqueue(cid, tier, tenant, now, score(k))
  ids[#ids + 1] = cid
end
redis.call('HSET', jkey, 'chunks', table.concat(ids, ','))
return ids
