-- A room its last holder leaves lingers for linger_ms (still recorded for resume), or goes
-- at once when linger_ms is 0.
-- KEYS: rooms, holders, gwrooms, feed, lingering ; ARGV: room, gw, feed_retention_ms, linger_ms
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('SREM', KEYS[2], ARGV[2]) == 1 then
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  if redis.call('SCARD', KEYS[2]) == 0 then
    if tonumber(ARGV[4]) > 0 then
      redis.call('ZADD', KEYS[5], now + tonumber(ARGV[4]), ARGV[1])
    else
      redis.call('HDEL', KEYS[1], ARGV[1])
    end
  end
  redis.call('XADD', KEYS[4], 'MINID', '~', now - tonumber(ARGV[3]), '*',
             'op', 'leave', 'gw', ARGV[2], 'room', ARGV[1])
  return 1
end
return 0
