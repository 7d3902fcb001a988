#!/usr/bin/env bash
# Install GPAW from Debian (system python, OpenMPI) for the reference spectra (docs/reference.md).
# Nothing in the default install or the test command needs it; tests that run GPAW are gated by S2S_RUN_GPAW=1.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c "import gpaw" 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q gpaw gpaw-data
fi
/usr/bin/python3 -c "import gpaw; print('GPAW', gpaw.__version__)"
# the half-core-hole O setup and its basis (once, into ~/.cache/s2s/gpaw-setups or $S2S_GPAW_SETUP_DIR)
if [ -x "${S2S_VENV:-.venv}/bin/python" ]; then
  "${S2S_VENV:-.venv}/bin/python" -c "from s2s.simulate.gpaw_ref import ensure_core_hole_setup; print('setups:', ensure_core_hole_setup())"
fi
