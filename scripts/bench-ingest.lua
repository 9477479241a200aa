-- wrk script: POST /v1/batch with 100 unique Product Viewed messages per request.
local counter = 0
local thread_id = 0
local key = os.getenv("WRITE_KEY")
-- RUN_ID: a prefix of the messageIds, so runs against one node send new messages each time.
local run_id = os.getenv("RUN_ID") or "r"

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function request()
  counter = counter + 1
  local parts = {}
  for i = 1, 100 do
    parts[i] = string.format(
      '{"type":"track","event":"Product Viewed","userId":"u%d","messageId":"%s-%d-%d-%d","timestamp":"2026-11-23T10:00:00Z","properties":{"product_id":"P%d","price":12.5}}',
      (counter * 100 + i) % 5000, run_id, tid or 0, counter, i, i)
  end
  local body = '{"writeKey":"' .. key .. '","sentAt":"2026-11-23T10:00:01Z","batch":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/batch", {["Content-Type"] = "application/json"}, body)
end
