"""Fixtures for the container tests: the images and a running e2e stack.

`images` (session) creates the base image debian:bookworm-slim when the
engine lacks it (scripts/make-base-image.sh), then builds every image of
docker-compose.yml + docker-compose.e2e.yml with the compose tool
(`docker compose` when present, else docker-compose 1.29).

`stack` (module) brings that pair of files up under a project name of its
own, with smtpd published on a free port of 127.0.0.1 (SMTPD_PUBLISH), and
always takes it down again with its volumes, even when a test failed.
`Stack` takes further overlays and environment variables
(test_tls_submission.py adds docker-compose.tls.yml; it builds nothing).

Where no Docker engine answers, every test here is skipped with a message
saying so; with MTA_REQUIRE_DOCKER=1 (scripts/test.sh sets it on machines
with a Docker client) that is a failure instead.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "debian:bookworm-slim"
COMPOSE_FILES = ["docker-compose.yml", "docker-compose.e2e.yml"]
IMAGES = {"smtpd": "mta-smtpd:latest", "sender": "mta-sender:latest"}
IMAGE_USER = "10025:10025"


def run(args, timeout=120, check=True, env=None, cwd=REPO):
    try:
        p = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(args)}: no answer in {timeout}s; "
                             f"output so far: {e.stdout!r} {e.stderr!r}")
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}:\n"
                             f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def no_engine(why):
    msg = (f"NO DOCKER ENGINE ({why}): the container tests did NOT run "
           "(images, compose, e2e delivery, scaling)")
    if os.environ.get("MTA_REQUIRE_DOCKER") == "1":
        pytest.fail(msg + "; MTA_REQUIRE_DOCKER=1 makes this a failure",
                    pytrace=False)
    pytest.skip(msg)


def compose_command():
    """`docker compose` (v2 plugin) when it answers, else docker-compose."""
    try:
        if subprocess.run(["docker", "compose", "version"],
                          capture_output=True, timeout=30).returncode == 0:
            return ["docker", "compose"]
    except (OSError, subprocess.TimeoutExpired):
        pass
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="session")
def engine():
    if not shutil.which("docker"):
        no_engine("the docker command is not installed")
    try:
        p = subprocess.run(["docker", "info", "--format",
                            "{{.ServerVersion}}"], capture_output=True,
                           text=True, timeout=30)
    except subprocess.TimeoutExpired:
        no_engine("`docker info` did not answer within 30 s")
    if p.returncode != 0 or not p.stdout.strip():
        no_engine(f"`docker info` failed: {p.stderr.strip()[-300:]}")
    compose = compose_command()
    if compose is None:
        no_engine("neither `docker compose` nor docker-compose is installed")
    return compose


@pytest.fixture(scope="session")
def images(engine):
    """Base image (made locally when missing) and every compose image."""
    run([str(REPO / "scripts" / "make-base-image.sh")], timeout=900)
    t0 = time.monotonic()
    run(engine + ["-p", "mtabuild"] + files_args() + ["build"],
        timeout=1800)
    print(f"\ncompose build: {time.monotonic() - t0:.0f} s")
    return engine


def files_args(files=COMPOSE_FILES):
    args = []
    for f in files:
        args += ["-f", str(REPO / f)]
    return args


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """One compose project of docker-compose.yml + the e2e overlay (and
    any further overlays in files); env adds variables for compose."""

    def __init__(self, compose, files=COMPOSE_FILES, env=None,
                 prefix="mtatest"):
        self.compose_cmd = compose
        self.files = list(files)
        self.project = prefix + uuid.uuid4().hex[:10]
        self.port = free_port()
        self.env = dict(os.environ, SMTPD_PUBLISH=f"127.0.0.1:{self.port}",
                        **(env or {}))
        self.paused = set()

    def compose(self, *args, timeout=300, check=True):
        return run(self.compose_cmd + ["-p", self.project] +
                   files_args(self.files) + list(args),
                   timeout=timeout, check=check, env=self.env)

    def containers(self, service):
        """Ids of the service's containers, running or not."""
        p = run(["docker", "ps", "-aq", "--no-trunc",
                 "--filter", f"label=com.docker.compose.project={self.project}",
                 "--filter", f"label=com.docker.compose.service={service}"])
        return p.stdout.split()

    def inspect(self, cid):
        return json.loads(run(["docker", "inspect", cid]).stdout)[0]

    def logs(self, cid):
        p = run(["docker", "logs", cid], check=False)
        return p.stdout + p.stderr

    def volume(self, name):
        return f"{self.project}_{name}"

    def read_volume(self, name, script):
        """Runs a shell script over a volume mounted read-only at /x, in
        the base image (the product images have no shell)."""
        p = run(["docker", "run", "--rm", "--network", "none",
                 "-v", f"{self.volume(name)}:/x:ro", BASE_IMAGE,
                 "sh", "-c", script], timeout=60)
        return p.stdout

    def pause(self, cid):
        run(["docker", "pause", cid])
        self.paused.add(cid)

    def unpause(self, cid):
        run(["docker", "unpause", cid])
        self.paused.discard(cid)

    def diagnostics(self):
        out = [self.compose("ps", check=False).stdout]
        for svc in ("smtpd", "sender", "mx", "dns"):
            for cid in self.containers(svc):
                tail = self.logs(cid).splitlines()[-15:]
                out.append(f"--- {svc} {cid[:12]}\n" + "\n".join(tail))
        return "\n".join(out)

    def down(self):
        for cid in list(self.paused):
            run(["docker", "unpause", cid], check=False)
        self.compose("down", "-v", "--remove-orphans", "--timeout", "5",
                     timeout=180, check=False)


def wait_until(fn, timeout, what, stack=None, interval=0.5):
    """Polls fn() until it returns a true value; returns that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    extra = f"\n{stack.diagnostics()}" if stack else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                         f"last value: {last!r}{extra}")


@pytest.fixture(scope="module")
def stack(images):
    s = Stack(images)
    try:
        s.compose("up", "-d", "--no-build", timeout=300)
        yield s
    finally:
        s.down()
