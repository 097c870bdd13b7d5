"""``bridge keys generate``: a CURVE key pair for the bus (bridge.bus.curve)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from bridge.errors import InputError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@click.group("keys")
def keys_group() -> None:
    """CURVE keys for the bus: required on every tcp:// endpoint that is not loopback.

    \b
    Example:
      bridge keys generate --out /etc/copybridge/keys --name connector
    """


@keys_group.command("generate")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True, metavar="DIR",
              help="Directory for NAME.key (secret, mode 0600) and NAME.pub (public); made mode 0700 if missing.")
@click.option("--name", default="bridge", show_default=True, help="File name stem: letters, digits, '_', '-', '.'.")
@click.option("--force", is_flag=True, help="Replace existing key files (whatever used the old key stops working).")
def generate(out: Path, name: str, force: bool) -> None:
    """Write a new CURVE key pair; print its public key and the [bus] lines that use it.

    The secret key never leaves NAME.key and is never printed. Give the public
    key to the other side: a connecting process (a worker on another host) sets
    it as curve_server_public; a binding process (the connector) lists it in
    curve_clients.

    \b
    Example:
      bridge keys generate --out /etc/copybridge/keys --name connector
      bridge keys generate --out /etc/copybridge/keys --name worker
    """
    import zmq

    from bridge.bus.curve import available

    if not NAME.fullmatch(name):
        raise InputError(f"--name {name!r}: use letters, digits, '_', '-' and '.' (a file name stem, no '/')")
    if not available():
        raise click.ClickException("this libzmq has no CURVE support (zmq.has('curve') is false): install a "
                                   "pyzmq/libzmq built with libsodium")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is not a directory")
    secret_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    if not force:
        for path in (secret_path, public_path):
            if path.exists() or path.is_symlink():
                raise InputError(f"{path} exists: keep it, or pass --force to replace the key pair "
                                 f"(whatever uses the old key stops working)")
    public, secret = zmq.curve_keypair()
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write(secret_path, secret + b"\n", 0o600, force)
        _write(public_path, public + b"\n", 0o644, force)
    except FileExistsError as exc:  # appeared since the check above
        raise InputError(f"{exc.filename} exists: pass --force to replace it") from None
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write the key files ({exc.strerror})") from None
    key = public.decode("ascii")
    click.echo(f"public key: {key}")
    click.echo(f"wrote {secret_path} (secret, mode 0600: readable by this user only) and {public_path}")
    click.echo("in this process's bridge.toml:")
    click.echo("  [bus]")
    click.echo(f"  curve_secret_file = \"{secret_path.resolve()}\"")
    click.echo("on a process that connects to this one (e.g. a worker reaching this connector):")
    click.echo(f"  curve_server_public = \"{key}\"")
    click.echo("on a process this one connects to (e.g. the connector a worker reaches), in its list:")
    click.echo(f"  curve_clients = [\"{key}\"]")


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Create ``path`` with ``mode`` from the start (O_EXCL: never through an existing file or link); with
    ``force`` an existing one is removed first, so it never keeps a wider mode."""
    if force and (path.exists() or path.is_symlink()):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        os.write(fd, data)
    finally:
        os.close(fd)
