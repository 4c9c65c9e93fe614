#!/usr/bin/env python3
"""Writes a one-layer OCI image archive (oci-layout, index.json, blobs) of a
root filesystem directory, for `ctr images import`: no registry here.
    oci-image.py ROOTFS OUT.tar TAG"""
import gzip, hashlib, io, json, os, sys, tarfile

rootfs, out, tag = sys.argv[1], sys.argv[2], sys.argv[3]
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w") as t:
    for name in sorted(os.listdir(rootfs)):
        t.add(os.path.join(rootfs, name), arcname=name)
layer = raw.getvalue()
gz = gzip.compress(layer, mtime=0)
def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
}).encode()
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(gz), "size": len(gz)}],
}).encode()
index = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
                   "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}],
}).encode()
with tarfile.open(out, "w") as t:
    def put(name, data):
        info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
    put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    put("index.json", index)
    for blob in (gz, config, manifest):
        put("blobs/sha256/" + sha(blob)[7:], blob)
