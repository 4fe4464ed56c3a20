-- wrk script: keep-alive POSTs of OpenAI chat completions, then one JSON summary line with exact percentiles.
-- bench/run.py prepends the word lists and sentences of bench/caller_turns.py as globals (NAMES, SENTENCE, ...).
-- Arguments (after `--`): model, text mode ("distinct" or "repeated"), bearer token, first booking reference.

local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

local model, mode, reference_base
local counter = 0

function init(args)
  model = args[1]
  mode = args[2]
  reference_base = tonumber(args[4])
  if mode ~= "distinct" and mode ~= "repeated" then
    error("text mode must be 'distinct' or 'repeated', not '" .. tostring(mode) .. "'")
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[3]
end

local function pick(words, reference)
  return words[(reference % #words) + 1]
end

local function caller_text()
  if mode == "repeated" then
    return REPEATED_TEXT
  end
  counter = counter + 1
  -- Unique across runs, threads and requests: the booking reference, and with it the words picked.
  local reference = reference_base + thread_number * THREAD_REFERENCE_STRIDE + counter
  return string.format(
    SENTENCE, pick(NAMES, reference), reference, pick(ERRANDS, reference), pick(WHENS, reference),
    pick(WHENS, reference + SECOND_WHEN_OFFSET)
  )
end

function request()
  local body = string.format(
    '{"model":"%s","max_tokens":%d,"messages":[{"role":"system","content":"%s"},{"role":"user","content":"%s"}]}',
    model, MAX_TOKENS, SYSTEM_PROMPT, caller_text()
  )
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_SUMMARY {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,'
      .. '"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max
  ))
end
