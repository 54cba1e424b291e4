#!/usr/bin/env bash
# Install everything bisect-qemu needs on a Debian 12 machine, as root:
# Debian packages (compilers, ccache, QEMU build deps, Debian's QEMU, a guest
# kernel, busybox-static, libguestfs and its Python bindings), then a virtualenv
# in .venv with the tool and its test tools, and `bisect-qemu` on the PATH.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install.sh: run as root (or install sudo)" >&2; exit 1; }
  SUDO="sudo"
fi

PACKAGES=(
  # the driver, the shell recipe and the tests' generated C projects
  git build-essential ccache pkg-config
  # python: Debian's python3 is the one python3-guestfs imports from
  python3 python3-venv python3-pip python3-guestfs
  # QEMU 1.0-era build dependencies
  libglib2.0-dev zlib1g-dev
  # the qcow2 probe: Debian's QEMU (trusted qemu-img, tests), guest kernel and userland
  qemu-system-x86 qemu-utils linux-image-amd64 linux-image-cloud-amd64 busybox-static cpio kmod xz-utils zstd
  libguestfs-tools
)

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

# --system-site-packages: libguestfs' Python bindings come from Debian, not PyPI.
/usr/bin/python3 -m venv --system-site-packages .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev]'
$SUDO ln -sf "$PWD/.venv/bin/bisect-qemu" /usr/local/bin/bisect-qemu
echo "install.sh: done; try: bisect-qemu demo"
