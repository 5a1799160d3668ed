-- Token buckets for one request: its API key's bucket and its tenant's, both or neither.
-- KEYS[1] the key's bucket, KEYS[2] the tenant's (hashes: tokens, ms of the last take)
-- ARGV[1] key rate (tokens/s), ARGV[2] key burst, ARGV[3] tenant rate, ARGV[4] tenant burst
-- Returns {1, tokens left (floor, the fuller bucket ignored), 0} with one token taken from
-- each, or {0, 0, ms until both hold a token} and nothing written.
local now = now_ms()
local buckets = {
  {KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])},
  {KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4])},
}
local wait = 0
for _, b in ipairs(buckets) do
  local key, rate, burst = b[1], b[2], b[3]
  local saved = redis.call('HMGET', key, 'tokens', 'ms')
  local tokens = burst
  if saved[1] then
    local elapsed = math.max(0, now - tonumber(saved[2]))
    tokens = math.min(burst, tonumber(saved[1]) + elapsed * rate / 1000)
  end
  b[4] = tokens
  if tokens < 1 then wait = math.max(wait, math.ceil((1 - tokens) * 1000 / rate)) end
end
if wait > 0 then return {0, 0, wait} end
local left = nil
for _, b in ipairs(buckets) do
  local key, rate, burst, tokens = b[1], b[2], b[3], b[4] - 1
  redis.call('HSET', key, 'tokens', string.format('%.6f', tokens), 'ms', now)
  -- Once refilled to the brim a bucket is the same as none: let it expire then.
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) * 1000 / rate) + 1000)
  if left == nil or tokens < left then left = tokens end
end
return {1, math.floor(left), 0}
