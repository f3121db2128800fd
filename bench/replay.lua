-- wrk script: replay pre-generated callbacks (bench/out/requests.tsv), each thread taking
-- every nth line so no two requests carry the same message.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local reqs = {}
local idx, step
function init(args)
  local path = os.getenv("KEFU_LOAD_FILE") or "bench/out/requests.tsv"
  for line in io.lines(path) do
    local q, b = line:match("^([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", "/wechat/callback?" .. q, { ["Content-Type"] = "text/xml" }, b)
  end
  step = tonumber(os.getenv("KEFU_LOAD_THREADS") or "1")
  idx = tid + 1
end

function request()
  local r = reqs[idx]
  idx = idx + step
  if idx > #reqs then idx = (idx - 1) % step + 1 end
  return r
end
