-- A slot (member '<gateway id>|<connection>') counts while its gateway is registered: the
-- slots of a gateway that left or was reaped are dropped here (and by `release_gateway_slots`
-- when it is reaped), so no gateway has to refresh its slots while they are held.
-- KEYS: user zset, gateways zset, the gateway's set of user zsets holding its slots
-- ARGV: member, limit (0 = none)
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local gateway = string.match(member, '^(.*)|')
  if not gateway or not redis.call('ZSCORE', KEYS[2], gateway) then
    redis.call('ZREM', KEYS[1], member)
  end
end
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[1])
redis.call('PERSIST', KEYS[1])  -- slots of older versions expired with the key
redis.call('SADD', KEYS[3], KEYS[1])
return 1
