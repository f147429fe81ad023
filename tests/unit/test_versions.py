"""The declared version matrix: the pair check ``start`` makes, and the README's table."""

from __future__ import annotations

import pytest

from starship_dags import versions
from starship_dags.versions import (
    UnsupportedVersionError,
    check_pair,
    markdown_table,
    minor,
)

README = versions.__file__.rsplit("/starship_dags/", 1)[0] + "/README.md"


@pytest.mark.parametrize("given, expected", [("2.9.3", "2.9"), ("3.1.0rc1", "3.1"), ("2.10.5+astro.1", "2.10"),
                                             ("3", None), ("", None), (None, None)])
def test_minor(given, expected):
    if expected is None:
        with pytest.raises(UnsupportedVersionError, match="not an Airflow version"):
            minor(given)
    else:
        assert minor(given) == expected


def test_every_declared_pair_is_accepted_with_its_limits():
    for source in versions.SOURCES:
        for target in versions.TARGETS:
            if source.startswith("3.") and target.startswith("2."):
                continue
            assert check_pair(f"{source}.1", f"{target}.0") == versions.limits(source, target)


@pytest.mark.parametrize("source, target, named", [
    ("2.6.3", "3.3.2", "sources: Airflow 2.7, 2.8"),
    ("2.11.0", "3.4.0", "targets: Airflow 2.10, 2.11, 3.0"),
    ("2.11.0", "2.9.3", "targets: Airflow 2.10"),
    ("3.3.2", "2.11.0", "an Airflow 3 source migrates only into an Airflow 3 target"),
])
def test_a_pair_outside_the_matrix_names_both_versions(source, target, named):
    with pytest.raises(UnsupportedVersionError) as caught:
        check_pair(source, target)
    message = str(caught.value)
    assert f"from Airflow {source} into Airflow {target}" in message
    assert named in message and "astronomer-starship 2.10.1" in message


def test_the_readme_shows_the_declared_matrix():
    with open(README, encoding="utf-8") as handle:
        readme = handle.read()
    assert markdown_table() in readme, "README's version table differs: paste python -m starship_dags.versions"
