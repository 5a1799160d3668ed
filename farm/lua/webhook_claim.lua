-- Claim the webhook deliveries that are due: each is pushed back by the claim time, so no
-- two schedulers take the same one, and one whose scheduler died mid-delivery comes due again.
-- ARGV[1] now (Unix s), ARGV[2] claim time (s), ARGV[3] most deliveries to claim
-- Returns the claimed delivery records.
local now, claim = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEY.webhook_due, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, delivery in ipairs(due) do
  redis.call('ZADD', KEY.webhook_due, now + claim, delivery)
end
return due
