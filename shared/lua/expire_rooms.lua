-- Rooms whose linger time passed with no holder leave the registry; returns their ids.
-- KEYS: lingering, rooms, feed ; ARGV: holders_prefix, feed_retention_ms
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = {}
for _, room in ipairs(due) do
  redis.call('ZREM', KEYS[1], room)
  if redis.call('SCARD', ARGV[1] .. room) == 0 then
    redis.call('HDEL', KEYS[2], room)
    redis.call('XADD', KEYS[3], 'MINID', '~', now - tonumber(ARGV[2]), '*',
               'op', 'expire', 'gw', '', 'room', room)
    gone[#gone + 1] = room
  end
end
return gone
