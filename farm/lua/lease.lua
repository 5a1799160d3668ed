-- Lease the next job for a node: fenced, expiring, and in this order:
--   strict tiers, strongest first (paused tiers are skipped);
--   aging: a job that waited k aging bounds of its tier competes k tiers up;
--   inside a tier, tenants by weighted round robin (tenant field `weight`, default 1);
--   inside a tenant, by queue score (priority, then FIFO).
-- A node that failed a job skips it, unless every live node has failed it; a node skips
-- jobs that need more memory than it has free, or an encoder it lacks.
-- ARGV[1] node id, ARGV[2] lease TTL ms, ARGV[3] tiers strongest first (comma separated),
-- ARGV[4] their aging bounds in ms (comma separated, same order), ARGV[5] node's free MB,
-- ARGV[6] the node's encoders (comma separated; '' or absent: it takes any job)
-- Returns {job id, fence token} or nil.
local node, ttl = ARGV[1], tonumber(ARGV[2])
local tiers, bounds = split(ARGV[3]), split(ARGV[4])
local free_mb = tonumber(ARGV[5] or '') or math.huge
local encoders = nil
if ARGV[6] and ARGV[6] ~= '' then
  encoders = {}
  for _, name in ipairs(split(ARGV[6])) do encoders[name] = true end
end
local WINDOW = 15  -- jobs looked at per tenant: a blocked head does not hide the rest
local now = now_ms()
redis.call('ZADD', KEY.nodes, now, node)
local live = redis.call('ZCOUNT', KEY.nodes, now - 3 * ttl, '+inf')

local function allowed(id)
  local needs = redis.call('HMGET', KEY.job .. id, 'needs_mb', 'needs_codec')
  if tonumber(needs[1] or '0') > free_mb then return false end
  if encoders and needs[2] and needs[2] ~= '' and not encoders[needs[2]] then return false end
  local b = KEY.job .. id .. KEY.blocked
  return not (redis.call('SISMEMBER', b, node) == 1 and redis.call('SCARD', b) < live)
end

local function paused(tier)
  return redis.call('SISMEMBER', KEY.paused, tier) == 1
end

-- The next tenant's job in the tier's ring, without taking it.
local function fair_pick(tier)
  local ring = KEY.ring .. tier
  for _ = 1, redis.call('LLEN', ring) do
    local tenant = redis.call('LINDEX', ring, 0)
    local ids = redis.call('ZRANGE', tenant_queue(tier, tenant), 0, WINDOW - 1)
    if #ids == 0 then
      redis.call('LPOP', ring)
    else
      for _, id in ipairs(ids) do
        if allowed(id) then return id, tenant end
      end
      redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT')
    end
  end
  return nil
end

-- Spend one of the tenant's picks this turn; its turn ends when they run out.
local function charge_turn(tier, tenant)
  local credit_key = KEY.ring .. tier .. KEY.credit
  local left = tonumber(redis.call('HGET', credit_key, tenant) or
    redis.call('HGET', KEY.tenant .. tenant, 'weight') or '1') - 1
  if left <= 0 then
    redis.call('HDEL', credit_key, tenant)
    local ring = KEY.ring .. tier
    if redis.call('LINDEX', ring, 0) == tenant then redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT') end
  else
    redis.call('HSET', credit_key, tenant, left)
  end
end

-- The oldest job of a weaker tier that has aged up to `level` (1 = strongest).
local function aged_pick(level)
  local best, best_ms = nil, nil
  for j = level + 1, #tiers do
    local bound = tonumber(bounds[j])
    if bound > 0 and not paused(tiers[j]) then
      local head = redis.call('ZRANGE', KEY.queue .. tiers[j], 0, 0, 'WITHSCORES')
      if head[1] then
        local enq = tonumber(head[2])
        if j - math.floor((now - enq) / bound) <= level and allowed(head[1])
            and (best_ms == nil or enq < best_ms) then
          best, best_ms = head[1], enq
        end
      end
    end
  end
  return best, best_ms
end

for level = 1, #tiers do
  local tier = tiers[level]
  local id, tenant
  if not paused(tier) then id, tenant = fair_pick(tier) end
  local aged, aged_ms = aged_pick(level)
  if aged and (not id or aged_ms < tonumber(redis.call('HGET', KEY.job .. id, 'enqueued_ms'))) then
    id, tenant = aged, nil
  elseif id then
    charge_turn(tier, tenant)
  end
  if id then
    return grant(id, node, ttl, now)
  end
end
return nil
