#!/usr/bin/env bash
# The README's test command: installs everything the suite needs and runs the whole suite.
#   bash tests/run_all.sh [pytest args]
# As root on Debian/Ubuntu it apt-installs what is missing (Chromium + ChromeDriver for the browser
# tests, slurm-wlm + munge for the SLURM tests) and starts a single-node SLURM when none is running.
# Anywhere else it uses what is there and says plainly which tests will skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- 1. system packages -------------------------------------------------------------------------
APT_PACKAGES="chromium chromium-driver slurm-wlm munge"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=""
    for pkg in $APT_PACKAGES; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "== apt-get install:$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
else
    echo "== not root on Debian/Ubuntu: not installing system packages;"
    echo "   browser tests skip without chromium/chromedriver, SLURM tests skip without a running SLURM"
fi

# ---- 2. Python environment ----------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test,peer]'

# ---- 3. SLURM (single node, for the tests marked `slurm`) ---------------------------------------
if [ -f tests/slurm/start_slurm.sh ]; then
    bash tests/slurm/start_slurm.sh || echo "== SLURM could not be started: SLURM tests will skip"
    trap 'bash tests/slurm/stop_slurm.sh || true' EXIT
fi

# ---- 4. the suite -------------------------------------------------------------------------------
export MPLBACKEND=Agg
python -m pytest -ra "$@"
