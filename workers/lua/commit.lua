-- Commit what one read of the ingest partitions gave, every partition fenced by its lease.
-- Writes, all or nothing per partition: each event to the history of every room it matched
-- (the history entry id is the room's position), the latest value per conflation key
-- (snapshots), the dead letters and the partition's cursor; then one inbox entry per gateway
-- (frames carry each room's position) for all the owned partitions together. A partition
-- another worker owns now is skipped whole: nothing of it is written.
-- Returns the (1-based) numbers, in the argument order, of the partitions skipped.
--
-- KEYS[1] dead-letter stream, KEYS[2] epoch, KEYS[3] sports,
-- KEYS[4..3+2P] per partition: its lease, its cursor; KEYS[4+2P..] inboxes (referred to by
-- their index: 1 is KEYS[4+2P])
-- ARGV[1] worker id, [2] epoch if none exists yet, [3] dead-letter maxlen,
-- [4] history key prefix, [5] history count cap, [6] history window (and ttl) ms,
-- [7] offline maxlen,
-- [8] offline ttl ms, [9] latest key prefix, [10] games key prefix, [11] snapshot ttl ms,
-- [12] partition count P, then per partition:
--   new cursor, dead-letter count, per dead letter: pair count k, k field/value pairs,
--   item count, and per item (in ingest order) either
--   'c', inbox index, sent_at                                   (a gateway's canary), or
--   'g', game, sport                 (index the game, after its first event: SADD, PEXPIRE), or
--   'd', event id, type, conflation key, data JSON, game ('' if none), snapshot head,
--        history room count h, h pairs (room id, mode), mode 'l' live window (capped by count,
--        trimmed by age once per period) or 'o' offline window (capped by count), upper case ('L', 'O') to also set the history's TTL (and mark the first
--        entry of a new history),
--        delivery count g, g times: inbox index, frame head, room count r, r room ids.
-- The worker sets TTLs once per key per refresh period, not per event: a key it wrote
-- recently still has most of its TTL, and a key it did not is refreshed on its next event.
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[2], epoch)
end
local partitions = tonumber(ARGV[12])
local first_inbox = 4 + 2 * partitions
local i = 13
local function take()
  local value = ARGV[i]
  i = i + 1
  return value
end

-- Per gateway, its inbox entries being built: one per ENTRY_ITEMS items, each a list of
-- fields, so that no XADD unpacks more values than Lua's stack takes (about 8000).
local ENTRY_ITEMS = 256
local inboxes = {}  -- inbox index -> list of {fields, count}
local order = {}    -- inbox indexes in first-use order
local function add(index, item)
  local entries = inboxes[index]
  if not entries then
    entries = {}
    inboxes[index] = entries
    order[#order + 1] = index
  end
  local entry = entries[#entries]
  if not entry or entry.count == ENTRY_ITEMS then
    entry = {fields = {}, count = 0}
    entries[#entries + 1] = entry
  end
  local n = tostring(entry.count)
  for k = 1, #item, 2 do
    entry.fields[#entry.fields + 1] = item[k] .. n
    entry.fields[#entry.fields + 1] = item[k + 1]
  end
  entry.count = entry.count + 1
end

local history_prefix, latest_prefix, games_prefix = ARGV[4], ARGV[9], ARGV[10]
local live_maxlen, live_ttl, offline_maxlen, offline_ttl = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local snapshot_ttl = ARGV[11]
local cutoff = nil
local function live_cutoff()  -- the oldest history id a live room keeps: now - its window
  if not cutoff then
    local now = redis.call('TIME')
    local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    cutoff = string.format('%.0f', ms - tonumber(live_ttl)) .. '-0'
  end
  return cutoff
end

local function commit_event(owned)
  local event_id, type_, key, data = take(), take(), take(), take()
  local game, snapshot_head = take(), take()
  local positions = {}
  for _ = 1, tonumber(take()) do
    local room, mode = take(), take()
    if owned then
      local hkey = history_prefix .. room
      local maxlen, ttl = live_maxlen, live_ttl
      if mode == 'o' or mode == 'O' then maxlen, ttl = offline_maxlen, offline_ttl end
      local id
      if mode == 'L' or mode == 'O' then
        -- Checked once per refresh period: the first entry of a history says so ('f'), for
        -- a subscriber that joined while it was empty (its position is 0-0).
        if redis.call('EXISTS', hkey) == 0 then
          id = redis.call('XADD', hkey, 'MAXLEN', '~', maxlen, '*',
                          'e', event_id, 't', type_, 'd', data, 'f', '1')
        else
          id = redis.call('XADD', hkey, 'MAXLEN', '~', maxlen, '*',
                          'e', event_id, 't', type_, 'd', data)
        end
        redis.call('PEXPIRE', hkey, ttl)
        if mode == 'L' then
          -- A live room's window is also an age: what is older goes, once per period.
          redis.call('XTRIM', hkey, 'MINID', '~', live_cutoff())
        end
      else
        id = redis.call('XADD', hkey, 'MAXLEN', '~', maxlen, '*',
                        'e', event_id, 't', type_, 'd', data)
      end
      positions[room] = epoch .. ':' .. string.sub(room, -8) .. ':' .. id
    end
  end
  local tail = ',"data":' .. data .. '}'
  if owned and game ~= '' then
    redis.call('HSET', latest_prefix .. game, key, snapshot_head .. tail)
  end
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
    if owned then
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

local skipped = {}
for p = 1, partitions do
  local owned = redis.call('GET', KEYS[2 + 2 * p]) == ARGV[1]
  local cursor = take()
  for _ = 1, tonumber(take()) do
    local fields = {}
    for n = 1, 2 * tonumber(take()) do fields[n] = take() end
    if owned then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
    end
  end
  for _ = 1, tonumber(take()) do
    local kind = take()
    if kind == 'c' then
      local index, sent_at = tonumber(take()), take()
      if owned then add(index, {'t', 'canary', 's', sent_at}) end
    elseif kind == 'g' then
      local game, sport = take(), take()
      if owned then
        redis.call('SADD', games_prefix .. sport, game)
        redis.call('SADD', KEYS[3], sport)
        redis.call('PEXPIRE', games_prefix .. sport, snapshot_ttl)
        redis.call('PEXPIRE', latest_prefix .. game, snapshot_ttl)
      end
    else
      commit_event(owned)
    end
  end
  if owned then
    redis.call('SET', KEYS[3 + 2 * p], cursor)
  else
    skipped[#skipped + 1] = p
  end
end

for _, index in ipairs(order) do
  for _, entry in ipairs(inboxes[index]) do
    -- NOMKSTREAM: a gateway reaped a moment ago gets nothing, not a new key.
    redis.call('XADD', KEYS[first_inbox - 1 + index], 'NOMKSTREAM', '*',
               'n', tostring(entry.count), unpack(entry.fields))
  end
end
return skipped
