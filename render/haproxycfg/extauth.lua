-- haproxy-sidecar: external authentication (auth-url). The renderer writes
-- this fixed file, and haproxy.cfg loads it, only when an Ingress uses
-- auth-url. Nothing of an object is in it: each route's values are the
-- action's arguments, quoted in haproxy.cfg:
--
--   http-request lua.haproxy_sidecar_extauth <backend> <host> <path?query>
--       <method> <headers to copy> <sign-in URL> <redirect param> <timeout ms>
--
-- ("-" for no headers, no sign-in URL, no redirect parameter). The action
-- asks the auth service, at an address of a server of <backend> that is up
-- (the auth Service's endpoints, never a name resolved here; "@host:<ns>"
-- for the backend of namespace <ns> that the routing maps give for the
-- request's host and <path>, asked with the request's Host), and sets
-- txn.extauth:
--   "ok"      2xx: the listed response headers replace the request's own;
--   "401"     with txn.extauth_www, the service's WWW-Authenticate, if any;
--   "signin"  401 with a sign-in URL: txn.extauth_location;
--   "403"     403.
-- It sets nothing when the service cannot be asked, does not answer in
-- time, or answers anything else: the rules after the action answer 500
-- unless txn.extauth is "ok", so every failure here, a Lua error included,
-- denies.

-- The routing maps, shared with the frontend's map_str and map_beg (one
-- reference per file, so the runtime's add/set/del map reach these too;
-- relative paths resolve against the configuration's directory, as
-- "default-path config" makes the frontend's). Read only for an auth-url of
-- http(s)://$host/..., whose auth service is the route the load balancer
-- serves for the request's host and the auth path.
local exact_map = Map.new("maps/exact.map", Map._str)
local prefix_map = Map.new("maps/prefix.map", Map._beg)

-- The backend the frontend's exact and prefix maps route host and path to,
-- by the exact host first, then its wildcard ("*." for the first label);
-- a canary pair's primary. Regular-expression routes are not looked up.
-- A path that only the host's catch-all "/" route covers (the prefix
-- lookup gives the same backend as "/" does) has no route of its own: nil,
-- so that a missing auth route never makes the application its own auth
-- service.
local function route_of(host, path)
  local v = exact_map:lookup(host .. path)
  if v == nil then
    v = prefix_map:lookup(host .. path .. "/")
    if v ~= nil and v == prefix_map:lookup(host .. "/") then
      return nil
    end
  end
  return v
end

local function route(host, path)
  local v = route_of(host, path)
  local wild = string.gsub(host, "^[^.]*%.", "*.", 1)
  if v == nil and exact_map:lookup(host .. path) == nil and prefix_map:lookup(host .. path .. "/") == nil and wild ~= host then
    v = route_of(wild, path)
  end
  if v == nil then
    return nil
  end
  return (string.match(v, "^([^~]*)"))
end

-- The request headers the auth service gets from the client's request;
-- the X-* ones below are built here, never copied from the client.
local forwarded = { "authorization", "cookie" }

local function percent_encode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- A server address as the HTTP client's dst wants it: IPv6 in brackets.
local function dst_of(addr)
  local _, colons = string.gsub(addr, ":", "")
  if colons > 1 and string.sub(addr, 1, 1) ~= "[" then
    local host, port = string.match(addr, "^(.*):(%d+)$")
    if host ~= nil then
      return "[" .. host .. "]:" .. port
    end
  end
  return addr
end

-- The addresses of the backend's servers that may take requests: empty
-- slots are disabled (MAINT), failed health checks are DOWN.
local function usable(backend)
  local out = {}
  local be = core.backends[backend]
  if be == nil then
    return out
  end
  for _, sv in pairs(be.servers) do
    local st = sv:get_stats().status
    if st == "no check" or (st ~= nil and string.sub(st, 1, 2) == "UP") then
      out[#out + 1] = dst_of(sv:get_addr())
    end
  end
  return out
end

-- HAProxy's header tables list a header's values from index 0.
local function values(t)
  local out = {}
  if t == nil then
    return out
  end
  local i = 0
  while t[i] ~= nil do
    out[#out + 1] = t[i]
    i = i + 1
  end
  return out
end

local function extauth(txn, backend, host, path, method, copy, signin, rdparam, timeout)
  local f = txn.f
  local ns = string.match(backend, "^@host:(.+)$")
  if ns ~= nil then
    -- auth-url http(s)://$host/...: the route of the request's host and
    -- the auth path, only a backend of the Ingress's own namespace
    -- (backend names start with "<namespace>_"; a namespace holds no "_").
    host = f:req_hdr("host") or ""
    local host_only = string.lower(string.match(host, "^([^:]*)") or "")
    backend = route(host_only, string.match(path, "^([^?]*)"))
    -- Only a Service's plain backend: a per-Ingress one (its name has a
    -- ":") carries its Ingress's protections, which asking its servers
    -- directly would skip.
    if backend == nil or string.sub(backend, 1, #ns + 1) ~= ns .. "_" or string.find(backend, ":", 1, true) then
      return
    end
  end
  local servers = usable(backend)
  if #servers == 0 then
    return
  end
  -- Sample fetches' booleans come as 0 or 1, and 0 is true in Lua.
  local scheme = "http"
  local ssl = f:ssl_fc()
  if ssl == true or ssl == 1 then
    scheme = "https"
  end
  local http_host = f:req_hdr("host") or ""
  local uri = f:pathq() or "/"
  local original = scheme .. "://" .. http_host .. uri
  local client = tostring(txn:get_var("txn.client") or f:src())
  local headers = {
    ["x-original-url"] = { original },
    ["x-original-method"] = { f:method() },
    ["x-auth-request-redirect"] = { uri },
    ["x-real-ip"] = { client },
    ["x-forwarded-for"] = { client },
    ["x-forwarded-proto"] = { scheme },
    ["x-forwarded-host"] = { http_host },
  }
  local req = txn.http:req_get_headers()
  for _, name in ipairs(forwarded) do
    local v = values(req[name])
    if #v > 0 then
      headers[name] = v
    end
  end

  local hc = core.httpclient()
  local send = hc[string.lower(method)]
  if send == nil then
    return
  end
  local ok, res = pcall(send, hc, {
    url = "http://" .. host .. path,
    dst = servers[math.random(#servers)],
    headers = headers,
    timeout = tonumber(timeout),
  })
  if not ok or res == nil or res.status == nil then
    return
  end
  local status = res.status
  local got = res.headers or {}
  if status >= 200 and status < 300 then
    if copy ~= "-" then
      for name in string.gmatch(copy, "[^,]+") do
        -- A client's own header of the name never reaches the endpoints.
        txn.http:req_del_header(name)
        for _, v in ipairs(values(got[name])) do
          txn.http:req_add_header(name, v)
        end
      end
    end
    txn:set_var("txn.extauth", "ok")
  elseif status == 401 and signin ~= "-" then
    local host_only = string.match(http_host, "^([^:]*)") or ""
    local vars = {
      host = host_only,
      http_host = http_host,
      best_http_host = http_host,
      scheme = scheme,
      pass_access_scheme = scheme,
      request_uri = uri,
      escaped_request_uri = percent_encode(uri),
    }
    local location = string.gsub(signin, "%$([%w_]+)", function(n)
      return vars[n]
    end)
    if rdparam ~= "-" then
      local sep = "?"
      if string.find(location, "?", 1, true) then
        sep = "&"
      end
      location = location .. sep .. rdparam .. "=" .. percent_encode(original)
    end
    txn:set_var("txn.extauth_location", location)
    txn:set_var("txn.extauth", "signin")
  elseif status == 401 then
    local www = values(got["www-authenticate"])
    if #www > 0 then
      txn:set_var("txn.extauth_www", www[1])
    end
    txn:set_var("txn.extauth", "401")
  elseif status == 403 then
    txn:set_var("txn.extauth", "403")
  end
end

core.register_action("haproxy_sidecar_extauth", { "http-req" }, extauth, 8)
