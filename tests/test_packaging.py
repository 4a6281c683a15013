"""The built wheel carries the project template, and `sqlops init` works from it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_template_and_init_works_from_it(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("sqlops-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    template = {n for n in names if n.startswith("sqlops/project_template/")}
    expected = {
        str(p.relative_to(ROOT)).replace("project_template/", "sqlops/project_template/", 1)
        for p in (ROOT / "project_template").rglob("*")
        if p.is_file()
    }
    assert expected <= template, expected - template
    assert "sqlops/project_template/.github/workflows/sqlops.yml" in template

    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    # -S: no site hooks, so the development checkout's editable install is not seen; the
    # dependencies still come from this environment's site-packages, after the wheel
    deps = next(p for p in sys.path if p.endswith("site-packages"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), deps])}
    where = subprocess.run(
        [sys.executable, "-S", "-c", "import sqlops; print(sqlops.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(site)), where
    work = tmp_path / "work"
    work.mkdir()
    for args in (["init", "shop"], ["build"]):
        result = subprocess.run(
            [sys.executable, "-S", "-m", "sqlops", *args],
            cwd=work if args[0] == "init" else work / "shop",
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert (work / "shop" / ".github" / "workflows" / "sqlops.yml").is_file()
    assert (work / "shop" / "shop.duckdb").is_file()
