-- Append a batch of validated events to their ingest partitions, in the order given: one
-- script call instead of one XADD each (`shared/ingest.py`: a pipeline's per-command cost was
-- most of an ingester's CPU). Every KEYS entry is of one shard (one Redis Cluster slot).
-- KEYS: the batch's distinct partition streams.
-- ARGV[1] the event field's name, [2] the stamp field's name, [3] the stamp (the schema a
-- worker trusts), then per event: its stream's index in KEYS (1-based), its JSON.
-- Returns the new entry ids, in argument order.
local event_field, stamp_field, stamp = ARGV[1], ARGV[2], ARGV[3]
local ids = {}
for i = 4, #ARGV, 2 do
  ids[#ids + 1] = redis.call('XADD', KEYS[tonumber(ARGV[i])], '*',
                             event_field, ARGV[i + 1], stamp_field, stamp)
end
return ids
