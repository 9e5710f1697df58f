-- wrk: plain GET of the URL; stops the thread after $MAX_REQUESTS responses (0: no cap).
local max = tonumber(os.getenv("MAX_REQUESTS") or "0") or 0
local count = 0

function response(status, headers, body)
  count = count + 1
  if max > 0 and count >= max then
    wrk.thread:stop()
  end
end
