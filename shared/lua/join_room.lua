-- Returns the feed entry id when this gateway became a holder (workers route the room here
-- once they applied it), '' when it held the room already, -1 if it is not registered.
-- KEYS: rooms, holders, gwrooms, feed, zset, lingering
-- ARGV: room, spec, gw, count, feed_retention_ms
if not redis.call('ZSCORE', KEYS[5], ARGV[3]) then
  return -1
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
if redis.call('SADD', KEYS[2], ARGV[3]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZREM', KEYS[6], ARGV[1])
  local t = redis.call('TIME')
  local minid = (t[1] * 1000 + math.floor(t[2] / 1000)) - tonumber(ARGV[5])
  return redis.call('XADD', KEYS[4], 'MINID', '~', minid, '*',
                    'op', 'join', 'gw', ARGV[3], 'room', ARGV[1], 'spec', ARGV[2])
end
return ''
