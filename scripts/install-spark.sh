#!/usr/bin/env bash
# Apache Spark (PySpark, which bundles Spark's jars) for the local-mode scale-out benchmark and
# test (bench/spark.sh, tests/spark/run.sh). Installed once into a venv under the Harken cache;
# re-running is quick when pyspark imports at the pinned version. Prints the venv path on stdout,
# progress on stderr. Spark 4 runs on Java 17 or 21: `java` must be on PATH (or JAVA_HOME set).
#
#   scripts/install-spark.sh
#
# PYSPARK_VERSION overrides the pin; PYTHON chooses the interpreter the venv is made from.
set -euo pipefail
PYSPARK_VERSION=${PYSPARK_VERSION:-4.3.0}
cache=${HARKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harken}
venv="$cache/spark-venv"
py="$venv/bin/python"
stamp="$venv/.harken-pyspark-version"

installed() {
  [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$PYSPARK_VERSION" ]] || return 1
  "$py" - "$PYSPARK_VERSION" <<'PY' 2>/dev/null
import sys
import pyspark
sys.exit(0 if pyspark.__version__ == sys.argv[1] else 1)
PY
}

if ! installed; then
  echo "install-spark: installing pyspark==$PYSPARK_VERSION into $venv (one-time, ~450 MB, several minutes)" >&2
  if [[ ! -x "$py" ]]; then
    mkdir -p "$cache"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  "$py" -m pip install --quiet --disable-pip-version-check "pyspark==$PYSPARK_VERSION" >&2
  rm -f "$stamp"
  "$py" -c "import pyspark; print(pyspark.__version__)" >"$stamp.part"
  mv "$stamp.part" "$stamp"
  installed || { echo "install-spark: pyspark==$PYSPARK_VERSION did not install into $venv" >&2; exit 1; }
  echo "install-spark: ready ($venv)" >&2
fi
if ! command -v java >/dev/null && [[ ! -x ${JAVA_HOME:-/nonexistent}/bin/java ]]; then
  echo "install-spark: no java on PATH; installing a Java 17 runtime (Debian)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; } >&2 ||
    { echo "install-spark: could not install Java; Spark needs Java 17 or 21" >&2; exit 1; }
fi
echo "$venv"
