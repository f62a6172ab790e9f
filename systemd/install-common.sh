# shellcheck shell=bash
# Shared by install.sh and install-monitor.sh (sourced, not run): the MASKDET_SKIP steps, the
# venv built from a clean copy of the source, and the unit's enabling.
# The sourcing script sets SRC, PREFIX, PYTHON, SKIP (" $MASKDET_SKIP ") and PIP_ARGS first.

skipped() { [[ $SKIP == *" $1 "* ]]; }

# Exit 2 naming any MASKDET_SKIP step that is not one of the arguments.
check_skip_steps() {
  local step
  for step in ${MASKDET_SKIP:-}; do
    [[ " $* " == *" $step "* ]] && continue
    echo "MASKDET_SKIP: unknown step '$step' ($*)" >&2
    exit 2
  done
}

sed_text() { printf '%s' "$1" | sed 's/[|&\\]/\\&/g'; }  # a path as sed replacement text

# The venv in $PREFIX/venv (made with the given `venv` options), and the package with the given
# extra installed into it, unless pip is skipped.
install_venv() {
  local extra=$1
  shift
  echo "== virtual environment in $PREFIX/venv"
  mkdir -p "$PREFIX"
  [ -x "$PREFIX/venv/bin/python" ] || "$PYTHON" -m venv "$@" "$PREFIX/venv"
  if skipped pip; then
    echo "   pip install skipped (MASKDET_SKIP)"
    return
  fi
  # Built from a clean copy of the source: an in-tree build would leave build/ in the checkout,
  # whose stale files a later build packs again.
  # (A global: the EXIT trap removes it if any step fails and `set -e` ends the script.)
  STAGE=$(mktemp -d)
  trap 'rm -rf "$STAGE"' EXIT
  tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./runs \
    --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$STAGE" -xf -
  "$PREFIX/venv/bin/pip" install --quiet --upgrade pip "${PIP_ARGS[@]}"
  "$PREFIX/venv/bin/pip" install --quiet --upgrade "${PIP_ARGS[@]}" "${STAGE}[$extra]"
  rm -rf "$STAGE"
}

# daemon-reload and enable the unit, unless systemctl is skipped.
enable_unit() {
  if skipped systemctl; then
    echo "   systemctl daemon-reload / enable skipped (MASKDET_SKIP)"
  else
    systemctl daemon-reload
    systemctl enable "$1" >/dev/null
  fi
}
