# Shared set-up for the project's scripts: installs what a fresh Debian machine lacks and
# picks a build cache. Sourced, not run.

# libclang for the RocksDB bindings (bindgen); a C++ compiler for RocksDB itself.
ensure_deps() {
  local missing=()
  if ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q 'libclang\.so'; then
    missing+=(libclang-dev)
  fi
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Reuse a build cache outside the clone when one exists (RocksDB takes minutes to build).
use_build_cache() {
  if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /var/tmp/meridian-target ] && [ -w /var/tmp/meridian-target ]; then
    export CARGO_TARGET_DIR=/var/tmp/meridian-target
  fi
}
