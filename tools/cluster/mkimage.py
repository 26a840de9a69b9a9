#!/usr/bin/env python3
"""Writes a one-layer image as a docker-archive tar that `ctr images import` reads.

No registry is reachable here, so images the cluster needs that are a static binary or two (the
pause sandbox, CoreDNS) are made from files on disk rather than pulled:

    mkimage.py --tag registry.k8s.io/pause:3.6 --out pause.tar --entrypoint /pause \\
        --user 65535 --add /path/to/pause:/pause
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from pathlib import Path


def build(
    *, tag: str, out: Path, entrypoint: list[str], user: str, files: list[tuple[Path, str]]
) -> None:
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for src, dest in files:
            parts = dest.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            # Fixed metadata keeps the layer, and so the image id, identical across rebuilds.
            info = tar.gettarinfo(str(src), arcname=dest.strip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with src.open("rb") as fh:
                tar.addfile(info, fh)
        # /tmp exists in every image: many programs (and readOnlyRootFilesystem mounts) expect it.
        tmp = tarfile.TarInfo("tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(tmp)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": entrypoint,
            "User": user,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "tools/cluster/mkimage.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.removeprefix("sha256:") + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [layer_name]}]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".tmp")
    with tarfile.open(tmp_out, mode="w") as archive:
        for name, data in (
            (config_name, config_bytes),
            (layer_name, layer_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tmp_out.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--entrypoint", required=True, action="append")
    parser.add_argument("--user", default="0")
    parser.add_argument("--add", required=True, action="append", help="SRC:DEST")
    args = parser.parse_args()
    files = []
    for spec in args.add:
        src, _, dest = spec.partition(":")
        if not dest or not Path(src).is_file():
            parser.error(f"--add {spec!r}: want SRC:DEST with SRC an existing file")
        files.append((Path(src), dest))
    build(tag=args.tag, out=args.out, entrypoint=args.entrypoint, user=args.user, files=files)


if __name__ == "__main__":
    main()
