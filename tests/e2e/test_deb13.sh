#!/usr/bin/env bash
# The same package test on a minimal Debian 13 (trixie): the static
# binaries and the package's scripts need nothing release-specific.
CONTAINER_SUITE=trixie exec bash "$(dirname "$0")/test_deb.sh"
