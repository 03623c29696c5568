-- Commit one processed batch of an ingest partition, fenced by the partition's lease. Writes,
-- all or nothing: each event to the history of every room it matched (the history entry id is
-- the room's position), the latest value per conflation key (snapshots), one inbox entry per
-- gateway (frames carry each room's position), the dead letters and the partition's cursor.
-- Returns 0, writing nothing, when another worker owns the partition now; else 1.
--
-- KEYS[1] lease, KEYS[2] cursor, KEYS[3] dead-letter stream, KEYS[4] epoch, KEYS[5] sports,
-- KEYS[6..] inboxes (referred to by their index: 1 is KEYS[6])
-- ARGV[1] worker id, [2] new cursor, [3] dead-letter maxlen, [4] epoch if none exists yet,
-- [5] history key prefix, [6] history maxlen, [7] history ttl ms, [8] offline maxlen,
-- [9] offline ttl ms, [10] latest key prefix, [11] games key prefix, [12] snapshot ttl ms,
-- then: dead-letter count, and per dead letter: pair count k, k field/value pairs,
-- then: item count, and per item (in ingest order) either
--   'c', inbox index, sent_at                                   (a gateway's canary), or
--   'd', event id, type, conflation key, data JSON, game ('' if none), sport, snapshot head,
--        history room count h, h pairs (room id, '1' if offline-delivery else '0'),
--        delivery count g, g times: inbox index, frame head, room count r, r room ids.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local epoch = redis.call('GET', KEYS[4])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[4], epoch)
end
local i = 13
local function take()
  local value = ARGV[i]
  i = i + 1
  return value
end

for _ = 1, tonumber(take()) do
  local fields = {}
  for n = 1, 2 * tonumber(take()) do fields[n] = take() end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end

local inboxes = {}  -- inbox index -> {fields, count}
local function add(index, item)
  local entry = inboxes[index]
  if not entry then
    entry = {fields = {}, count = 0}
    inboxes[index] = entry
  end
  local n = tostring(entry.count)
  for k = 1, #item, 2 do
    entry.fields[#entry.fields + 1] = item[k] .. n
    entry.fields[#entry.fields + 1] = item[k + 1]
  end
  entry.count = entry.count + 1
end

local last = {}  -- room -> its history's last id in this script
local touched = {}  -- keys whose TTL this script already set: once per key, not per event
local function expire(key, ttl)
  if not touched[key] then
    touched[key] = true
    redis.call('PEXPIRE', key, ttl)
  end
end
for _ = 1, tonumber(take()) do
  local kind = take()
  if kind == 'c' then
    local index = tonumber(take())
    add(index, {'t', 'canary', 's', take()})
  else
    local event_id, type_, key, data = take(), take(), take(), take()
    local game, sport, snapshot_head = take(), take(), take()
    local positions = {}
    for _ = 1, tonumber(take()) do
      local room, offline = take(), take()
      local hkey = ARGV[5] .. room
      local prev = last[room]
      if not prev then
        local top = redis.call('XREVRANGE', hkey, '+', '-', 'COUNT', 1)
        prev = top[1] and top[1][1] or '0-0'
      end
      local maxlen, ttl = ARGV[6], ARGV[7]
      if offline == '1' then maxlen, ttl = ARGV[8], ARGV[9] end
      local id = redis.call('XADD', hkey, 'MAXLEN', '~', maxlen, '*',
                            'e', event_id, 't', type_, 'd', data, 'p', prev)
      expire(hkey, ttl)
      last[room] = id
      positions[room] = epoch .. ':' .. string.sub(room, -8) .. ':' .. id
    end
    if game ~= '' then
      local lkey = ARGV[10] .. game
      redis.call('HSET', lkey, key, snapshot_head .. ',"data":' .. data .. '}')
      if not touched[lkey] then  -- a game's first event in this batch: index it once
        redis.call('SADD', ARGV[11] .. sport, game)
        redis.call('SADD', KEYS[5], sport)
        expire(ARGV[11] .. sport, ARGV[12])
      end
      expire(lkey, ARGV[12])
    end
    local tail = ',"data":' .. data .. '}'
    for _ = 1, tonumber(take()) do
      local index, head = tonumber(take()), take()
      local rooms, parts = {}, {}
      for r = 1, tonumber(take()) do
        local room = take()
        rooms[r] = room
        if positions[room] then
          parts[#parts + 1] = '"' .. room .. '":"' .. positions[room] .. '"'
        end
      end
      local frame
      if #parts > 0 then
        frame = head .. ',"positions":{' .. table.concat(parts, ',') .. '}' .. tail
      else
        frame = head .. tail
      end
      local item = {'t', type_, 'r', table.concat(rooms, ','), 'f', frame}
      if key ~= '' then
        item[#item + 1] = 'k'
        item[#item + 1] = key
      end
      add(index, item)
    end
  end
end

for index, entry in pairs(inboxes) do
  -- NOMKSTREAM: a gateway reaped a moment ago gets nothing, not a new key.
  redis.call('XADD', KEYS[5 + index], 'NOMKSTREAM', '*', 'n', tostring(entry.count),
             unpack(entry.fields))
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
