-- wrk script: POST one JSON step per request, cycling over 64 runs.
-- Usage: wrk -t2 -c64 -d10s --latency -s benches/wrk/single.lua http://127.0.0.1:18081
wrk.method = "POST"
wrk.body = '{"node_id":"node-llm","node_kind":"llm","input_task":"' .. string.rep("i", 256)
  .. '","output_content":"' .. string.rep("o", 256) .. '","verdict":"commit","blocked":false,'
  .. '"uncertainty":0.1,"cost_usd":0.0021,"tokens_used":1234,"carbon_gco2":0.5,"duration_ms":120}'
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/runs/load-" .. (n % 64) .. "/steps")
end
