#!/usr/bin/env bash
# Print the Python to build wtilde_dask's environment with: $PYTHON if set, else Python 3.12 (then 3.13) when the
# machine has one (on PATH, or under pyenv; a pyenv shim counts only if it runs), else python3.
# Why >= 3.12: jax >= 0.11 needs it (its CPU FFT is faster than jax 0.10's: the likelihood's XLA way and
# everything else jnp.fft does; the likelihood's CPU default runs F on the host and is as fast on 3.11), and the
# current PyAutoLens (the `peer` extra) needs it.
set -u
if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; exit 0; fi
for v in 3.12 3.13; do
    if "python$v" -c 'import sys' >/dev/null 2>&1; then command -v "python$v"; exit 0; fi
    for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v"*/bin/python"$v"; do
        if [ -x "$p" ] && "$p" -c 'import sys' >/dev/null 2>&1; then echo "$p"; exit 0; fi
    done
done
echo python3
