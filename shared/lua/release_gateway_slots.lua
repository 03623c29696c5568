-- The user zsets are named in the gateway's set (they share the registry's hash tag, so this
-- stays within one Cluster slot).
-- KEYS: the gateway's set of user zsets holding its slots ; ARGV: gateway id
local prefix = ARGV[1] .. '|'
local released = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if string.sub(member, 1, #prefix) == prefix then
      redis.call('ZREM', key, member)
      released = released + 1
    end
  end
end
redis.call('DEL', KEYS[1])
return released
