-- wrk: the refresh_token grant with rotation. Each response carries the successor token, which
-- the next request presents, so every request spends a fresh token (no reuse, no revocation).
-- $TOKENS_FILE holds one refresh token per line: one per connection plus spares (wrk calls
-- request() once before the connections start).
-- Stops the thread after $MAX_REQUESTS responses (0: no cap).
local max = tonumber(os.getenv("MAX_REQUESTS") or "0") or 0
local count = 0
local pool = {}
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function init(args)
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    if #line > 0 then
      pool[#pool + 1] = line
    end
  end
end

function request()
  -- An empty pool means a rotation failed; the request then fails visibly (non-2xx).
  local token = table.remove(pool) or "pool-exhausted"
  return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then
    pool[#pool + 1] = token
  end
  count = count + 1
  if max > 0 and count >= max then
    wrk.thread:stop()
  end
end
