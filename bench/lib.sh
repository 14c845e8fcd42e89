# Shared by bench/run.sh and bench/per-request.sh (sourced, not run).

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Waits (up to about 15 s) until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2; exit 1
}

# The head of an nginx configuration kept under $WORK: $1 = its process lines
# (worker_processes …), then the http block's opening with its temp paths and no access log;
# the caller appends its upstreams, servers and the closing brace.
nginx_conf_head() {
  mkdir -p "$WORK/nginx"
  cat <<NGINX
$1
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log crit;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
NGINX
}

# nginx directives (server level) that add the headers mosaic adds: Forwarded, X-Forwarded-For,
# X-Forwarded-Host and traceparent to the upstream, x-mosaic-provider and x-mosaic-request-id to
# the caller, with values nginx makes cheaply (its own random $request_id as the trace and
# request id, a fixed parent span id). The load generator and the upstream share the machine's
# cores with the proxy and parse these bytes: without them nginx would be measured doing less.
nginx_same_headers() {
  cat <<'NGINX'
    proxy_set_header Forwarded "for=$remote_addr;host=$host;proto=$scheme";
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header traceparent "00-$request_id-b7ad6b7169203331-01";
    add_header x-mosaic-provider ok;
    add_header x-mosaic-request-id $request_id;
NGINX
}
