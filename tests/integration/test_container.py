"""The container files are valid; compose.yaml is checked by `docker compose config` when the
Docker client with its compose plugin is installed (our CI machines have no Docker engine)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from docservice.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run([docker, "compose", "version"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _compose_available(), reason="docker compose not installed here")
def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        ["docker", "compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_env_example_documents_every_setting() -> None:
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    assert {name.upper() for name in Settings.model_fields} <= documented


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.12-slim AS build" in dockerfile
    assert re.search(r"^USER docservice$", dockerfile, re.MULTILINE)
    assert re.search(
        r"^HEALTHCHECK .*\n\s+CMD \[\"docservice\", \"health\"", dockerfile, re.MULTILINE
    )
    assert "GRPC_HOST=0.0.0.0" in dockerfile and "EXPOSE 50051 8080" in dockerfile
    assert "HTTP_HOST=0.0.0.0" in dockerfile


def test_a_copy_of_env_example_is_a_valid_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings()
    assert settings == Settings.model_validate({})  # the file shows the defaults
