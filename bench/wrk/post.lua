-- wrk: POST the form body in $BODY (application/x-www-form-urlencoded) on every request.
-- Stops the thread after $MAX_REQUESTS responses (0: only wrk's -d bounds the run).
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local max = tonumber(os.getenv("MAX_REQUESTS") or "0") or 0
local count = 0

function response(status, headers, body)
  count = count + 1
  if max > 0 and count >= max then
    wrk.thread:stop()
  end
end
