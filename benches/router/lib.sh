# Shared by benches/router/run.sh and mlp.sh (sourced): the release build of the load
# generator, nginx as the reference proxy, process clean-up and port waits.
# Expects WORK (a scratch folder) to be set before `nginx_start`.

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "port $1 never opened" >&2; exit 1
}

# BIN: the `overhead` example (router, upstream and load generator), built unless given.
overhead_bin() {
  if [ -z "${BIN:-}" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-router}
    cargo build --release -q -p kiln-router --example overhead
    BIN=$CARGO_TARGET_DIR/release/examples/overhead
  fi
}

# NGINX_BIN: Debian's nginx, installed with apt-get if absent, unless given.
nginx_bin() {
  if [ -z "${NGINX_BIN:-}" ]; then
    if ! command -v nginx >/dev/null; then
      apt-get install -y nginx >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y nginx >/dev/null; }
    fi
    NGINX_BIN=$(command -v nginx)
  fi
}

# nginx_proxy PORT UPSTREAM_PORT: a keep-alive HTTP/1.1 reverse proxy server block.
nginx_proxy() {
  cat <<CONF
  upstream up$2 { server 127.0.0.1:$2; keepalive 128; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:$1;
    location / {
      proxy_pass http://up$2;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
CONF
}

# nginx_grpc PORT UPSTREAM_PORT: a gRPC (h2c) reverse proxy server block.
nginx_grpc() {
  cat <<CONF
  upstream up$2 { server 127.0.0.1:$2; keepalive 128; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:$1 http2;
    location / { grpc_pass grpc://up$2; }
  }
CONF
}

# nginx_start CPU SERVER_BLOCKS: one worker pinned on CPU serving the blocks; sets NG_PID and
# NG_WORKERS (the worker's CPU counts too: nginx listens before it forks it).
nginx_start() {
  mkdir -p "$WORK/nginx/logs"
  cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_buffer_size 64k;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
$2
}
CONF
  taskset -c "$1" "$NGINX_BIN" -e stderr -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & NG_PID=$!; PIDS+=($NG_PID)
  NG_WORKERS=""
  # pgrep finds nothing (status 1) until nginx has forked its worker.
  for _ in $(seq 200); do NG_WORKERS=$(pgrep -P $NG_PID | paste -sd, - || true); [ -n "$NG_WORKERS" ] && break; sleep 0.05; done
  [ -n "$NG_WORKERS" ] || { echo "nginx started no worker" >&2; exit 1; }
}
