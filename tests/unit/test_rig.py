"""The test rig's shared venvs: this tree is installed into a venv once per content, never under a
server that runs from it while nothing changed (two test processes share the venvs)."""

from __future__ import annotations

from tests.integration import rig


def test_the_tree_is_installed_again_only_when_the_package_changed(tmp_path, mocker):
    mocker.patch.object(rig, "CACHE", tmp_path)
    installs = mocker.patch.object(rig, "run")
    digest = mocker.patch.object(rig, "project_digest", return_value="first")
    env = rig.AirflowEnv("3.3")
    env.path.mkdir(parents=True)

    env.install_project()
    env.install_project()
    assert installs.call_count == 1
    assert "--reinstall-package" in installs.call_args.args[0]

    digest.return_value = "changed"
    env.install_project()
    assert installs.call_count == 2


def test_an_install_cut_off_halfway_is_done_again(tmp_path, mocker):
    mocker.patch.object(rig, "CACHE", tmp_path)
    digest = mocker.patch.object(rig, "project_digest", return_value="edited")
    env = rig.AirflowEnv("3.3")
    env.path.mkdir(parents=True)
    (env.path / ".project").write_text("before")  # installed, then the package was edited
    mocker.patch.object(rig, "run", side_effect=KeyboardInterrupt)
    try:
        env.install_project()  # cut off: the venv holds neither copy whole
    except KeyboardInterrupt:
        pass
    digest.return_value = "before"  # the edit undone
    installs = mocker.patch.object(rig, "run")
    env.install_project()
    assert installs.call_count == 1


def test_the_digest_follows_the_package_files_and_metadata(tmp_path, mocker):
    mocker.patch.object(rig, "ROOT", tmp_path)
    (tmp_path / "starship_dags" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[project]\nversion = '1'\n")
    module = tmp_path / "starship_dags" / "hook.py"
    module.write_text("A = 1\n")
    first = rig.project_digest()
    (tmp_path / "starship_dags" / "__pycache__" / "hook.pyc").write_bytes(b"compiled")
    assert rig.project_digest() == first  # compiled files are not the package
    module.write_text("A = 2\n")
    assert rig.project_digest() != first
    module.write_text("A = 1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nversion = '2'\n")
    assert rig.project_digest() != first
