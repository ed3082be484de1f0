"""What a config, a rules file or a saved pipeline someone else wrote may reach (docs/security.md).

Two boundaries, each with an opt-in that lives outside any file it guards (an environment variable
of the user's), since a setting inside a config could be written by the same hand as the rest:

- hosts: a secret read from the environment goes only to the default OpenAI host, to the host of the
  user's own `OPENAI_BASE_URL`, or to one listed in `UNINER_ALLOWED_HOSTS`;
- files: a path that a rules file, a saved pipeline or an adapter folder names is read only inside
  that folder (or below a root listed in `UNINER_ALLOWED_ROOTS`), only as a regular file (a FIFO or a
  device is refused without being opened for a blocking read), and only up to a size cap.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import List, Optional, Tuple, Union

from .errors import ConfigError, TrustError

ALLOWED_HOSTS_ENV = "UNINER_ALLOWED_HOSTS"
ALLOWED_ROOTS_ENV = "UNINER_ALLOWED_ROOTS"
# where the official client sends requests when neither `base_url` nor OPENAI_BASE_URL is set
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
# a file read whole into memory (a gazetteer, a rules file, a saved pipeline's JSON)
MAX_DATA_BYTES = 64 << 20
# one file of an adapter folder (weights are memory-mapped, not read whole)
MAX_ADAPTER_FILE_BYTES = 8 << 30
_DEFAULT_PORTS = {"http": 80, "https": 443}

PathLike = Union[str, Path]


# ------------------------------------------------------------------ hosts

def _effective(url: str) -> Tuple[str, int]:
    """(host, port) the HTTP client (httpx, under the openai client) connects to for `url`."""
    import httpx

    parsed = httpx.URL(url)
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.host:
        raise ConfigError(f"not an http(s) URL: {url!r}")
    return parsed.host.lower().rstrip("."), parsed.port or _DEFAULT_PORTS[parsed.scheme]


def _entry(entry: str) -> Tuple[str, Optional[int]]:
    """An UNINER_ALLOWED_HOSTS entry: `host`, `host:port` or a URL; no port written: any port."""
    from urllib.parse import urlsplit

    parts = urlsplit(entry if "://" in entry else f"//{entry}")
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.port is None and "://" in entry and parts.scheme in _DEFAULT_PORTS:
        return host, _DEFAULT_PORTS[parts.scheme]  # a URL without a port means its scheme's port
    return host, parts.port


def allowed_hosts() -> List[Tuple[str, Optional[int]]]:
    """The hosts a secret may go to: the default OpenAI host, OPENAI_BASE_URL's, UNINER_ALLOWED_HOSTS's."""
    hosts: List[Tuple[str, Optional[int]]] = [_effective(DEFAULT_OPENAI_URL)]
    own = os.environ.get("OPENAI_BASE_URL")
    if own:
        try:
            hosts.append(_effective(own))
        except ValueError:
            pass  # the client will refuse it itself
    for entry in os.environ.get(ALLOWED_HOSTS_ENV, "").replace(",", " ").split():
        hosts.append(_entry(entry))
    return hosts


def secret_may_go_to(base_url: Optional[str]) -> bool:
    """Whether a secret from the environment may be sent to `base_url` (None: the client's default,
    OPENAI_BASE_URL or OpenAI's own host, both the user's choice)."""
    if base_url is None:
        return True
    try:
        host, port = _effective(base_url)
    except Exception:  # noqa: BLE001 - a URL that does not parse gets nothing
        return False
    return any(host == h and (p is None or port == p) for h, p in allowed_hosts())


def host_label(base_url: str) -> str:
    """`host:port` of a URL, as a user would list it in UNINER_ALLOWED_HOSTS."""
    try:
        host, port = _effective(base_url)
    except Exception:  # noqa: BLE001
        return base_url
    return f"{host}:{port}"


# ------------------------------------------------------------------ files

def allowed_roots() -> List[Path]:
    """Folders listed in UNINER_ALLOWED_ROOTS (os.pathsep-separated), resolved."""
    return [Path(p).expanduser().resolve() for p in os.environ.get(ALLOWED_ROOTS_ENV, "").split(os.pathsep) if p]


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def contained(folder: PathLike, name: PathLike, what: str) -> Path:
    """`name` (relative to `folder`, or absolute) resolved, links followed, refused unless it lies inside
    `folder` or below an allowed root. `what` says who named it (for the message)."""
    base = Path(folder).resolve()
    target = (base / Path(name)).resolve()  # an absolute `name` replaces `base`, and is checked the same
    if _within(target, base) or any(_within(target, root) for root in allowed_roots()):
        return target
    raise TrustError(f"{what}: {str(name)!r} resolves to {target}, outside {base}; a file named there is read only "
                     f"inside its folder (move the file there, or list the folder that holds it in "
                     f"{ALLOWED_ROOTS_ENV}; see docs/security.md)")


def _regular_fd(path: Path, cap: int, what: str) -> int:
    """An open descriptor of a regular file no larger than `cap`; anything else refused, nothing left open.

    Opened non-blocking: a FIFO's open would otherwise wait for a writer, forever."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise TrustError(f"{what}: cannot open {path} ({err.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TrustError(f"{what}: {path} is not a regular file (a FIFO, a device or a socket?); only "
                             "regular files are read")
        if info.st_size > cap:
            raise TrustError(f"{what}: {path} holds {info.st_size:,} bytes, over the {cap:,}-byte limit for "
                             "such a file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: PathLike, what: str, cap: int = MAX_DATA_BYTES) -> bytes:
    """The bytes of a regular file of at most `cap` bytes (a file that grows while read is cut off and refused)."""
    path = Path(path)
    fd = _regular_fd(path, cap, what)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise TrustError(f"{what}: {path} is over the {cap:,}-byte limit for such a file")
    return data


def read_text(path: PathLike, what: str, cap: int = MAX_DATA_BYTES) -> str:
    return read_regular(path, what, cap).decode("utf8")


def read_inside(folder: PathLike, name: PathLike, what: str, cap: int = MAX_DATA_BYTES) -> str:
    """The text of `name` inside `folder`: `contained`, then `read_text`."""
    return read_text(contained(folder, name, what), what, cap)


def check_tree(folder: PathLike, what: str, cap: int = MAX_ADAPTER_FILE_BYTES) -> Path:
    """`folder` resolved, after checking that everything below it is a folder or a regular file within
    `cap`, every link resolving inside it (or below an allowed root)."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise TrustError(f"{what}: {folder} is not a folder")
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                contained(root, os.path.relpath(path, root), f"{what} (the link {path})")
            info = path.stat() if path.exists() else None
            if info is None:
                raise TrustError(f"{what}: {path} is a link to nothing")
            if stat.S_ISDIR(info.st_mode):
                if path.is_symlink():  # a copy would follow it, loops included
                    raise TrustError(f"{what}: {path} is a link to a folder; put the folder itself there")
                continue
            if not stat.S_ISREG(info.st_mode):
                raise TrustError(f"{what}: {path} is not a regular file (a FIFO, a device or a socket?)")
            if info.st_size > cap:
                raise TrustError(f"{what}: {path} holds {info.st_size:,} bytes, over the {cap:,}-byte limit")
    return root


def copy_tree(src: PathLike, dst: PathLike, what: str, cap: int = MAX_ADAPTER_FILE_BYTES) -> None:
    """Copy a folder after `check_tree`: a link out of it is refused, never followed into the copy."""
    root = check_tree(src, what, cap)

    def copy(s: str, d: str) -> object:
        # checked again at copy time (the tree may change meanwhile); a link already at the target is
        # replaced, not written through
        source = contained(root, os.path.relpath(s, root), what)
        fd = _regular_fd(source, cap, what)
        if os.path.islink(d):
            os.unlink(d)
        with os.fdopen(fd, "rb") as fin, open(d, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        shutil.copystat(s, d)
        return d

    shutil.copytree(root, dst, copy_function=copy, dirs_exist_ok=True)
