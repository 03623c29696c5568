-- Holder-set keys are built from a prefix inside the script; they share the registry's hash
-- tag, so this stays within one Cluster slot.
-- Rooms left with no holder linger for linger_ms (0: they go at once), like leave_room.
-- KEYS: zset, info, gwrooms, gwconns, rooms, feed, lingering
-- ARGV: gw, holders_prefix, ttl_ms (or 'force'), feed_retention_ms, reason, linger_ms
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[3] ~= 'force' then
  if not score or tonumber(score) > now - tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('ZREM', KEYS[1], ARGV[1])
local rooms = redis.call('HKEYS', KEYS[3])
for _, room in ipairs(rooms) do
  local holders = ARGV[2] .. room
  redis.call('SREM', holders, ARGV[1])
  if redis.call('SCARD', holders) == 0 then
    if tonumber(ARGV[6]) > 0 then
      redis.call('ZADD', KEYS[7], now + tonumber(ARGV[6]), room)
    else
      redis.call('HDEL', KEYS[5], room)
    end
  end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('XADD', KEYS[6], 'MINID', '~', now - tonumber(ARGV[4]), '*',
           'op', 'gateway_down', 'gw', ARGV[1], 'reason', ARGV[5])
return 1
