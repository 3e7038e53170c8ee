#!/usr/bin/env bash
# The README's test command: installs everything the suite needs and runs the whole suite.
#   bash tests/run_all.sh [pytest args]
# As root on Debian/Ubuntu it apt-installs what is missing (Chromium + ChromeDriver for the browser
# tests, slurm-wlm + munge for the SLURM tests) and starts a single-node SLURM when none is running.
# Anywhere else it uses what is there and says plainly which tests will skip. With CI=true (CI sets it, .ci/run
# exports it) a skipped or xfailed test fails the run, naming what was missing (tests/conftest.py).
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
# Python 3.12 when there is one (the current PyAutoArray / PyAutoLens, the `peer` extra, need >= 3.12):
# $PYTHON if set, else 3.12 / 3.13 on PATH or under pyenv, else python3 (deployments/local/python.sh says why).
PYTHON=$(bash deployments/local/python.sh)
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $PYTHON ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test,peer,docs]'
echo "== tests run on $(python -c 'import sys; print("Python", sys.version.split()[0], "at", sys.executable)')"
python - <<'PY'
import importlib.metadata as md, sys
for name in ("autoarray", "autolens"):
    try:
        print(f"== peer {name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"== peer {name} not installed: its comparison tests fail (the `peer` extra is required)")
if sys.version_info < (3, 12):
    print("== Python < 3.12: the `peer` extra installs the older autoarray 2026.7.29.1 (no autolens); peer tests "
          "that need the current release fail and say so. Remove .venv and install Python 3.12 to run them all.")
PY

# ---- 3. SLURM (single node, for the tests marked `slurm`) ---------------------------------------
if [ -f tests/slurm/start_slurm.sh ]; then
    bash tests/slurm/start_slurm.sh || echo "== SLURM could not be started: SLURM tests will skip"
    trap 'bash tests/slurm/stop_slurm.sh || true' EXIT
fi

# ---- 4. the suite -------------------------------------------------------------------------------
export MPLBACKEND=Agg
python -m pytest -ra --durations=25 "$@"
