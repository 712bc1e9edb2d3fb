-- wrk script: GET /api/v1/persons/{id}, cycling through the ids in $IDS_FILE (one per line).
-- The requests are formatted once in init(), so that the client spends as little of the two cores
-- as a plain `wrk URL` run does (wrk.format per request costs the client about a third).
local requests = {}
local i = 0

init = function()
  for line in io.lines(os.getenv("IDS_FILE")) do
    requests[#requests + 1] = wrk.format("GET", "/api/v1/persons/" .. line)
  end
end

request = function()
  i = i + 1
  return requests[(i % #requests) + 1]
end
