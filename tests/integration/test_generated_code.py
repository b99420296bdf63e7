"""The committed betterproto2 code is exactly what `make proto` generates from proto/."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import google.api

ROOT = Path(__file__).resolve().parents[2]


def _differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [f"only in {left}: {n}" for n in comparison.left_only]
    found += [f"only in {right}: {n}" for n in comparison.right_only]
    found += [f"differs: {n}" for n in comparison.diff_files]
    for name in comparison.common_dirs:
        found += _differences(left / name, right / name)
    return found


def test_committed_code_matches_fresh_generation(tmp_path: Path) -> None:
    out = tmp_path / "_proto"
    out.mkdir()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    options = "client_generation=async,server_generation=async,google_protobuf_descriptors"
    makefile = (ROOT / "Makefile").read_text()
    assert f"PROTO_OPTS := {options}" in makefile, "keep this test's options in step with make"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            str(ROOT / "proto"),
            "-I",
            str(Path(google.api.__path__[0]).parent.parent),  # google/api/annotations.proto
            f"--python_betterproto2_out={out}",
            f"--python_betterproto2_opt={options}",
            str(ROOT / "proto" / "document.proto"),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    assert _differences(ROOT / "docservice" / "_proto", out) == [], "run `make proto`"
