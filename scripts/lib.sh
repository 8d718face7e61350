# Shared steps of Kasa's scripts: install what is missing, build the UI.
# Sourced by scripts/run and scripts/test; works as root or through sudo.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian packages Kasa builds and tests with (see docs/PLATFORM notes in README).
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
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup (the toolchain is pinned in rust-toolchain.toml)"
  local node_major
  node_major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$node_major" -ge 20 ] || die "Node.js $(node --version) is too old for the UI build; Node 20.19 or newer is needed"
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
