-- Rooms whose linger time passed with no holder: what expire_rooms.lua would remove now.
-- Read-only: their histories are deleted before they leave the registry (Registry.expire_rooms).
-- KEYS: lingering ; ARGV: holders_prefix
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = {}
for _, room in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  if redis.call('SCARD', ARGV[1] .. room) == 0 then
    due[#due + 1] = room
  end
end
return due
