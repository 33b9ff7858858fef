-- wrk script: durable purchases with pre-issued tokens, one token per request.
-- Each line of the file given after `--` is "JWT TOKEN"; thread i takes lines
-- i, i+T, i+2T, ... Responses are counted by status: 201 is a new durable order,
-- 200 a replay (tokens ran out), anything else an error.
local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  -- Requests are formatted here, before the clock starts, so the client spends its
  -- CPU on sending rather than on Lua string work (the no-op run sends one fixed
  -- request; on two shared cores the client's cost is taken from the server's).
  local nthreads = tonumber(args[2])
  reqs = {}
  local n = 0
  for l in io.lines(args[1]) do
    if #l > 0 then
      n = n + 1
      if (n - id) % nthreads == 0 then
        local jwt, token = l:match("^(%S+) (%S+)$")
        reqs[#reqs + 1] = wrk.format("POST", "/api/activities/bench/purchase",
          { ["Authorization"] = "Bearer " .. jwt, ["Content-Type"] = "application/json" },
          '{"token":"' .. token .. '"}')
      end
    end
  end
  idx = 1
  created, replays, errors = 0, 0, 0
end

function request()
  local r = reqs[idx]
  if r == nil then r = reqs[1] end
  idx = idx + 1
  return r
end

function response(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 200 then replays = replays + 1
  else errors = errors + 1 end
end

function done(summary, latency, requests)
  local c, r, e = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); r = r + t:get("replays"); e = e + t:get("errors")
  end
  local secs = summary.duration / 1e6
  io.write(string.format("created=%d replays=%d errors=%d secs=%.2f created_per_sec=%.0f p99_ms=%.2f\n",
    c, r, e, secs, c / secs, latency:percentile(99) / 1000))
end
