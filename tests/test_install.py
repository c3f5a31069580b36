"""The package as pip installs it, not as this checkout holds it: the wheel is built, installed
(no ``-e``) into a fresh virtual environment, and the quick start runs there, outside the checkout,
at a tiny size. The weights the defaults need (the DnCNN, the default artificial-fingerprint pair)
must come from inside the installed package."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig

from conftest import ROOT


def _run(cmd, cwd, env):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{cmd}: {p.stderr[-2000:]}"
    return p.stdout


def test_the_built_wheel_runs_the_quick_start_outside_the_checkout(tmp_path):
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    build = ROOT / "build"  # setuptools' scratch folder in the checkout: removed again if this test made it
    made_build = not build.exists()
    try:
        _install_and_run(dist, venv, work, tmp_path)
    finally:
        if made_build:
            shutil.rmtree(build, ignore_errors=True)


def _install_and_run(dist, venv, work, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
         tmp_path, env)
    (wheel,) = dist.glob("dif-*.whl")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    py = venv / "bin" / "python"
    site = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env).strip()
    # torch and the other dependencies come from this interpreter's site-packages, read as a plain
    # path: its .pth files (this checkout's editable install among them) are not processed
    with open(os.path.join(site, "_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)], tmp_path, env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = _run([str(py), "-c", "import dif, train_dif; print(dif.__file__); print(train_dif.__file__)"], work, env)
    assert all(line.startswith(str(venv)) for line in where.split()), where

    _run(["dif-demo", "data", "--train", "4", "--test", "3", "--size", "64", "--steps", "20", "--patch", "32", "--quiet"],
         work, env)
    out = _run(["dif-train", "data/train", "chk", "--extractor", "dncnn", "--epochs", "2", "--crop", "32", "--batch",
                "8", "--augment", "0", "--quiet"], work, env)
    assert "Saved" in out
    assert json.loads((work / "chk" / "config.json").read_text())["extractor"].startswith("dncnn")
    _run(["dif-eval", "chk", "data/test", "--json", "m.json", "--quiet"], work, env)
    assert json.loads((work / "m.json").read_text())["n_real"] == 3
    # the default artificial-fingerprint pair, from the package
    _run(["artificial-fingerprints", "embed", "--data_dir", "data/test/0_real", "--output_dir", "art",
          "--identical_fingerprints", "--quiet"], work, env)
    det = _run(["artificial-fingerprints", "detect", "--data_dir", "art/fingerprinted_images", "--output_dir", "det",
                "--fingerprints", "art/embedded_fingerprints.txt", "--quiet"], work, env)
    assert "bit accuracy" in det, det
