-- wrk script for scripts/bench-recommend.sh: GET /v1/customers/{id}/recommendations?k=10 for a
-- random customer (user ids in the file IDS).
local token = os.getenv("TOKEN") or ""
local ids = {}

function init(args)
  for line in io.lines(os.getenv("IDS")) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  math.randomseed(os.time() + math.random(1000))
end

function request()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/v1/customers/" .. id .. "/recommendations?k=10", {["Authorization"] = "Bearer " .. token})
end
