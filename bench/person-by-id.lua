-- wrk script: GET /api/v1/persons/{id}, cycling through the ids in $IDS_FILE (one per line).
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do
  ids[#ids + 1] = line
end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/persons/" .. ids[(i % #ids) + 1])
end
