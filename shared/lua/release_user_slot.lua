-- KEYS: user zset, the gateway's set of user zsets holding its slots ; ARGV: member, gateway id
redis.call('ZREM', KEYS[1], ARGV[1])
local prefix = ARGV[2] .. '|'
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, 1, #prefix) == prefix then
    return 1
  end
end
redis.call('SREM', KEYS[2], KEYS[1])
return 1
