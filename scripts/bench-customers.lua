-- wrk script for scripts/bench-customers.sh. MODE:
--   read      GET /v1/customers/{id} of a random customer (ids in the file IDS)
--   write     PUT /v1/customers/{id}/skin-profile of a random customer, alternating facts, so
--             every request changes the profile (a new version, encrypted, outbox event)
--   identify  POST /v1/batch with 100 identify messages of new users (email, phone, name):
--             each goes through identity resolution and becomes a customer
--   track     POST /v1/batch with 100 Product Viewed messages (the same shape of request)
local mode = os.getenv("MODE") or "read"
local token = os.getenv("TOKEN") or ""
local key = os.getenv("WRITE_KEY") or ""
local run_id = os.getenv("RUN_ID") or "r"
local ids = {}
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  local f = os.getenv("IDS")
  if f then
    for line in io.lines(f) do
      if #line > 0 then ids[#ids + 1] = line end
    end
  end
  math.randomseed(os.time() + (tid or 0))
end

local skin = { '{"skin_type":"dry","concerns":["dryness"]}', '{"skin_type":"oily","concerns":["acne","pores"]}' }

function request()
  counter = counter + 1
  local auth = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
  if mode == "read" then
    return wrk.format("GET", "/v1/customers/" .. ids[math.random(#ids)], auth)
  elseif mode == "write" then
    return wrk.format("PUT", "/v1/customers/" .. ids[math.random(#ids)] .. "/skin-profile", auth, skin[counter % 2 + 1])
  end
  local parts = {}
  for i = 1, 100 do
    local user = string.format("%s-%d-%d-%d", run_id, tid or 0, counter, i)
    if mode == "identify" then
      parts[i] = string.format(
        '{"type":"identify","userId":"u-%s","messageId":"i-%s","timestamp":"2026-11-23T10:00:00Z","traits":{"email":"%s@example.com","phone":"+4420794%05d","name":"Bench %d"}}',
        user, user, user, (counter * 100 + i) % 100000, i)
    else
      parts[i] = string.format(
        '{"type":"track","event":"Product Viewed","userId":"u-%s","messageId":"t-%s","timestamp":"2026-11-23T10:00:00Z","properties":{"product_id":"P%d","price":12.5}}',
        user, user, i)
    end
  end
  local body = '{"writeKey":"' .. key .. '","sentAt":"2026-11-23T10:00:01Z","batch":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/batch", { ["Content-Type"] = "application/json" }, body)
end
