"""The Lua scripts of the Redis cache (see repository.py for the scheme they implement).

Each runs atomically in Redis. Values are sealed as b"ds2" + sha1 hex + payload (entries.seal),
which the scripts check with Redis's own sha1 so that garbage never blocks a store.
"""

__all__ = ["BUMP_GENERATION", "READ_LIST", "READ_VERSIONS", "SET_IF_NEWER", "WRITE_THROUGH"]

# Shared by the write scripts. An entry counts only if its value is well sealed (see entries.seal;
# Redis's Lua has sha1): garbage, or a key of another type, is replaced by any version.
_STORE_IF_NEWER = """
local function sealed_version(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'hash' then
    if kind ~= 'none' then redis.call('DEL', key) end
    return nil
  end
  local fields = redis.call('HMGET', key, 'v', 'b')
  local v, b = fields[1], fields[2]
  if not (v and b and string.sub(b, 1, 3) == 'ds2'
          and redis.sha1hex(string.sub(b, 44)) == string.sub(b, 4, 43)) then
    return nil
  end
  return tonumber(v)
end

local function store_if_newer(key, version, value, deleted, ttl)
  local current = sealed_version(key)
  if current and current >= tonumber(version) then return 0 end
  redis.call('HSET', key, 'v', version, 'b', value, 'x', deleted)
  redis.call('EXPIRE', key, ttl)
  return 1
end
"""

# The list generation counter, shared by the scripts that read or bump it.
_GENERATIONS = """
-- A missing or garbage counter starts at the server clock in microseconds, above any value an
-- earlier counter could have reached by INCR: no generation is ever reused, not after a restart
-- or an eviction of the counter either (a page stored late under an old generation, or left
-- over from before, would be served again when a counter restarted from 0 came back to it).
local function start_generation(key)
  local now = redis.call('TIME')
  local generation = string.format('%d', now[1] * 1000000 + now[2])
  redis.call('SET', key, generation)
  return generation
end

local function bump_generation(key)
  if redis.call('EXISTS', key) == 0 then
    start_generation(key)
    return 1
  end
  local ok = redis.pcall('INCR', key)
  if type(ok) == 'table' and ok['err'] then start_generation(key) end
  return 1
end
"""

# Replace a document entry only with a higher version.
SET_IF_NEWER = (
    _STORE_IF_NEWER + "return store_if_newer(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])"
)

# After a commit: store the document if newer, and move every list page out of sight.
WRITE_THROUGH = (
    _STORE_IF_NEWER
    + _GENERATIONS
    + "store_if_newer(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])\nreturn bump_generation(KEYS[2])"
)

BUMP_GENERATION = _GENERATIONS + "return bump_generation(KEYS[1])"

# The current list generation and the page stored under it, in one round trip.
READ_LIST = (
    _GENERATIONS
    + """
local generation = redis.call('GET', KEYS[1]) or start_generation(KEYS[1])
if not tonumber(generation) then return false end
return {generation, redis.call('GET', ARGV[1] .. generation .. ':' .. ARGV[2])}
"""
)

# The document's version and the cached snapshots after `after`, up to `limit` of them.
READ_VERSIONS = """
local ok, current = pcall(redis.call, 'HGET', KEYS[1], 'v')
current = ok and tonumber(current)
if not current then return false end
local last = math.min(current, tonumber(ARGV[2]) + tonumber(ARGV[3]))
local keys = {}
for n = tonumber(ARGV[2]) + 1, last do keys[#keys + 1] = ARGV[1] .. n end
if #keys == 0 then return {} end
return redis.call('MGET', unpack(keys))
"""
