-- wrk script: POST /v1/batch with 100 messages per request shaped like browser traffic: random
-- UUIDv4 messageIds and anonymousIds (devices drawn from 200,000), a userId on half of them
-- (customers drawn from 100,000), Product Viewed of 8,000 products. Unlike bench-ingest.lua
-- (ordered messageIds, 5,000 customers), every index insert lands at a random place.
local key = os.getenv("WRITE_KEY")
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
end

local function uuid()
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0xfff),
    math.random(0x8000, 0xbfff), math.random(0, 0xffff), math.random(0, 0xffff), math.random(0, 0xffff))
end

function request()
  local parts = {}
  for i = 1, 100 do
    local device = math.random(1, 200000)
    local user = ""
    if device % 2 == 0 then
      user = string.format('"userId":"cus-%d",', device % 100000)
    end
    parts[i] = string.format(
      '{"type":"track","event":"Product Viewed",%s"anonymousId":"dev-%08d-%d","messageId":"%s","timestamp":"2026-11-23T10:00:00Z","properties":{"product_id":"P%d","price":12.5}}',
      user, device, device * 7919 % 1000003, uuid(), math.random(1, 8000))
  end
  local body = '{"writeKey":"' .. key .. '","sentAt":"2026-11-23T10:00:01Z","batch":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/batch", {["Content-Type"] = "application/json"}, body)
end
