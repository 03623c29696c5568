-- Renew the leases this worker still holds; returns, per key, 1 if renewed, 0 if lost.
-- KEYS: lease keys ; ARGV[1] worker id, ARGV[2] lease ms
local out = {}
for n, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[n] = 1
  else
    out[n] = 0
  end
end
return out
