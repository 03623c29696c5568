-- KEYS: rooms, holders, gwrooms, feed ; ARGV: room, gw, feed_retention_ms
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('SREM', KEYS[2], ARGV[2]) == 1 then
  if redis.call('SCARD', KEYS[2]) == 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
  local t = redis.call('TIME')
  local minid = (t[1] * 1000 + math.floor(t[2] / 1000)) - tonumber(ARGV[3])
  redis.call('XADD', KEYS[4], 'MINID', '~', minid, '*',
             'op', 'leave', 'gw', ARGV[2], 'room', ARGV[1])
  return 1
end
return 0
