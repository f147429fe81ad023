#!/usr/bin/env bash
# Builds the starship_dags wheel into astro/include/, where astro/Dockerfile installs it from.
# Then: cd astro && astro dev start
source "$(dirname "$0")/bootstrap.sh"
rm -f astro/include/starship_dags-*.whl
"${UV[@]}" build --wheel --out-dir astro/include --quiet .
ls astro/include/starship_dags-*.whl
