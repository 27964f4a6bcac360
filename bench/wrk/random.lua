-- wrk script of `npm run bench -- wrk-hot wrk-notfound` (bench/wrk.ts).
-- wrk ... -s random.lua <url> -- paths <file>    GET a random path of <file> (one per line)
-- wrk ... -s random.lua <url> -- notfound <pfx>  GET a new unregistered identifier under <pfx>
local paths = {}
local mode = "paths"
local prefix = ""
local n = 0

function init(args)
  mode = args[1] or "paths"
  if mode == "paths" then
    for line in io.lines(args[2]) do
      if line ~= "" then paths[#paths + 1] = line end
    end
    if #paths == 0 then error("no paths in " .. tostring(args[2])) end
  else
    prefix = args[2]
  end
  -- Each thread its own sequence (wrk starts every thread at the same time).
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  if mode == "paths" then
    return wrk.format("GET", paths[math.random(#paths)])
  end
  n = n + 1
  return wrk.format("GET", string.format("/api/handles/%s/NOPE-%x-%x", prefix, n, math.random(0, 0x7fffffff)))
end
