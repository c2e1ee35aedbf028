#!/usr/bin/env bash
# Installs Mesa's Vulkan drivers, whose lavapipe is a Vulkan device on the CPU: CI runs the
# crate's CubeCL code (`--features vulkan`: noise drawn on the device, kernel caches, warm-up)
# on it, without a GPU. Run as root. It installs the package itself, so a machine that
# already has it does not hide a missing step.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null; }

# The loader must find lavapipe's manifest, or every Vulkan test fails to start a device.
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null
