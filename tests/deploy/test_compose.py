"""No Docker engine runs here, so check that compose.yaml and the Dockerfiles only
refer to things that exist, and that the configs they ship are valid."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from breaker._config import load_settings

ROOT = Path(__file__).parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def dockerfiles() -> list[Path]:
    found = []
    for service in SERVICES.values():
        build = service.get("build")
        if build:
            found.append(ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile"))
    return sorted(set(found))


def test_every_build_context_and_dockerfile_exists() -> None:
    assert dockerfiles(), "compose.yaml builds nothing?"
    for path in dockerfiles():
        assert path.is_file(), f"compose.yaml names {path.relative_to(ROOT)}, which is missing"


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: p.name)
def test_every_copy_source_exists(dockerfile: Path) -> None:
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY"):
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} is missing"


def test_every_bind_mount_source_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: volume {source} is missing"


def test_published_ports_bind_loopback_only() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_breaker_port_matches_its_config() -> None:
    settings = load_settings(ROOT / "deploy" / "breaker.compose.toml")
    [published] = SERVICES["breaker"]["ports"]
    assert published.rsplit(":", 1)[1] == str(settings.api.port)
    target = settings.breakers[0].target
    assert target.host in SERVICES, f"the breaker probes {target.host}, not a compose service"


def test_redis_server_spec_points_at_the_redis_service() -> None:
    command = " ".join(SERVICES["kamailio"]["command"])
    assert "addr=redis;port=6379" in command and "redis" in SERVICES


def test_kamailio_configs_referenced_exist_in_the_image_copy() -> None:
    text = yaml.safe_dump(COMPOSE)
    for ref in re.findall(r"/etc/kamailio/breaker/([\w.-]+)", text):
        assert (ROOT / "kamailio-config" / ref).exists(), f"compose refers to missing {ref}"


def test_kamailio_command_line_from_compose_passes_kamailio_check(tmp_path: Path) -> None:
    args = [a.replace("/etc/kamailio/breaker", str(ROOT / "kamailio-config"))
            for a in SERVICES["kamailio"]["command"]]  # fmt: skip
    args = [a.replace("addr=redis", "addr=127.0.0.1").replace("sip:presence:", "sip:127.0.0.1:")
            .replace("0.0.0.0", "127.0.0.1") for a in args]  # fmt: skip
    result = subprocess.run(
        ["kamailio", "-c", *args], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
