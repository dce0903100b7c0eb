"""The command-line side of distributed encoding: `--devices` and `--ray` on the commands that encode documents
(build, update, bench, tune).

`--devices` spreads the encoding over processes of this machine (dense/devices.py); `--ray` over a Ray cluster
(dense/ray_encode.py), its finished blocks kept as shards in `INDEX.shards/` beside the index until the index is
saved, so a killed build or update run again encodes only what was left. See docs/distributed.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

LOCAL = "local"  # --ray without an address


def add_args(p: argparse.ArgumentParser) -> None:
    """--devices and --ray (one or the other)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--devices", metavar="LIST|all",
                   help="encode documents on several devices, one process each: cuda:0,cuda:1 / all / cpu,cpu")
    g.add_argument("--ray", nargs="?", const=LOCAL, metavar="ADDRESS",
                   help="encode documents with Ray Data: local Ray without ADDRESS, or auto / ray://HOST:PORT "
                        "(pip install '.[ray]')")


def shard_folder(index: str | Path) -> Path:
    """Where `--ray` keeps the finished blocks of the index being written: INDEX.shards beside it."""
    index = Path(index)
    return index.with_name(index.name + ".shards")


class Spread:
    """--devices / --ray for one command: checked at once (before any reading), routing the document encoding of
    the encoder it is given, finished after the index is saved."""

    def __init__(self, args: argparse.Namespace, index: str | Path):
        self.devices, self.ray = getattr(args, "devices", None), getattr(args, "ray", None)
        self.index, self.routed = index, None
        if self.devices:
            from .dense.devices import parse_devices

            self.devices = parse_devices(self.devices)
        elif self.ray:
            import importlib.util

            from .dense.ray_encode import INSTALL

            if importlib.util.find_spec("ray") is None:
                raise ValueError(INSTALL)

    def route(self, encoder) -> None:
        """Route a loaded Encoder's document encoding as asked (nothing when neither flag is given)."""
        if self.devices:
            from .dense.devices import attach

            self.routed = attach(encoder, self.devices)
        elif self.ray:
            from .dense.ray_encode import attach

            self.routed = attach(encoder, None if self.ray == LOCAL else self.ray, shard_folder(self.index))

    def spec(self, spec):
        """An IndexSpec whose encoder (build, update, bench, tune: spec.make_encoder) is routed as asked; its
        embedding cache over the routing, so only the texts it lacks reach the workers."""
        from dataclasses import replace

        return replace(spec, route=self.route) if self.devices or self.ray else spec

    def finish(self) -> None:
        """After the index is saved: the device processes stopped, the shards no longer needed removed."""
        if self.routed is not None:
            self.routed.finish()
