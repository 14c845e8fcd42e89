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
