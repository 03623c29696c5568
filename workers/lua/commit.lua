-- Commit one processed batch of an ingest partition, fenced by the partition's lease: the
-- inbox entries, the dead letters and the partition's new cursor are written together, or
-- (when another worker owns the partition now) nothing is written and 0 is returned.
-- KEYS[1] lease, KEYS[2] cursor, KEYS[3] dead-letter stream, KEYS[4..] inboxes
-- ARGV[1] worker id (the owner we must still be), ARGV[2] the batch's last entry id (the new
-- cursor), ARGV[3] dead-letter maxlen (approximate),
-- then: dead-letter count d, and per dead letter: pair count k, k field/value pairs,
-- then per inbox key (KEYS[4..], in order): pair count k, k field/value pairs.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local i = 4
local dead = tonumber(ARGV[i]); i = i + 1
for _ = 1, dead do
  local count = tonumber(ARGV[i]); i = i + 1
  local fields = {}
  for n = 1, 2 * count do fields[n] = ARGV[i]; i = i + 1 end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end
for k = 4, #KEYS do
  local count = tonumber(ARGV[i]); i = i + 1
  local fields = {}
  for n = 1, 2 * count do fields[n] = ARGV[i]; i = i + 1 end
  -- NOMKSTREAM: a gateway reaped a moment ago gets nothing, not a new key.
  redis.call('XADD', KEYS[k], 'NOMKSTREAM', '*', unpack(fields))
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
