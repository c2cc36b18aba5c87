#!/usr/bin/python3
"""Build hostile or damaged llmops artifacts for tests/cli/pack-hostile.sh.

usage: pack-hostile.py KIND OUT.tar.gz

Each KIND is one way an archive can try to escape its folder, lie, or blow up; apart from
that one fault the archive is a good artifact: a canonical MANIFEST.json first, listing
config.json and model.bin with their true sizes and digests, then those files.  Python's
tarfile and gzip write it, so nothing here depends on llm-pack's own writer.
"""
import gzip
import hashlib
import io
import json
import sys
import tarfile

FILES = {"config.json": b'{"hidden_size": 8}\n', "model.bin": bytes(range(256)) * 40}
MTIME = 1700000000


def manifest(files, **extra):
    doc = {
        "format": 1,
        "name": "evil",
        "version": "1.0.0",
        "created": "2023-11-14T22:13:20Z",
        "files": [
            {"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
            for p, b in sorted(files.items())
        ],
    }
    doc.update(extra)
    # The canonical form for a manifest of plain strings and integers.
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def info(name, size=0, kind=tarfile.REGTYPE, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.type = kind
    ti.mode = mode
    ti.mtime = MTIME
    ti.uid = ti.gid = 0
    return ti


def add(tar, name, data, kind=tarfile.REGTYPE, **kw):
    ti = info(name, len(data) if kind == tarfile.REGTYPE else 0, kind)
    for k, v in kw.items():
        setattr(ti, k, v)
    tar.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def build(kind):
    raw = io.BytesIO()
    tar = tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT)
    files = dict(FILES)
    man = manifest(files)
    entries = sorted(files.items())
    before = []  # (name, data, type, attrs) written after the manifest, before the files
    after = []
    if kind == "dotdot":
        before.append(("../evil", b"x", tarfile.REGTYPE, {}))
    elif kind == "dotdot-inner":
        before.append(("a/../../evil", b"x", tarfile.REGTYPE, {}))
    elif kind == "absolute":
        before.append(("/tmp/llmops-evil", b"x", tarfile.REGTYPE, {}))
    elif kind == "symlink":
        before.append(("link", b"", tarfile.SYMTYPE, {"linkname": "/etc/passwd"}))
    elif kind == "hardlink":
        after.append(("hard", b"", tarfile.LNKTYPE, {"linkname": "config.json"}))
    elif kind == "device":
        before.append(("dev", b"", tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3}))
    elif kind == "fifo":
        before.append(("fifo", b"", tarfile.FIFOTYPE, {}))
    elif kind == "folder":
        before.append(("sub", b"", tarfile.DIRTYPE, {}))
    elif kind == "duplicate":
        after.append(("model.bin", FILES["model.bin"], tarfile.REGTYPE, {}))
    elif kind == "extra":
        after.append(("zz-extra.txt", b"not listed\n", tarfile.REGTYPE, {}))
    elif kind == "missing":
        entries = entries[:1]
    elif kind == "out-of-order":
        entries = entries[::-1]
    elif kind == "lying-digest":
        entries = [(p, b if p != "model.bin" else b[:-1] + b"\x00") for p, b in entries]
    elif kind == "lying-size":
        entries = [(p, b if p != "config.json" else b + b" ") for p, b in entries]
    elif kind == "manifest-second":
        pass
    elif kind == "manifest-bad-path":
        files2 = dict(files)
        files2["../x"] = b"x"
        man = manifest(files2)
    elif kind == "manifest-not-canonical":
        man = json.dumps(json.loads(man), sort_keys=True, indent=1).encode()
    elif kind == "manifest-newer-format":
        man = man.replace(b'"format":1', b'"format":2')
    elif kind == "claims-huge":
        doc = json.loads(man)
        doc["files"][1]["size"] = 1 << 40
        man = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    if kind == "manifest-second":
        add(tar, "config.json", FILES["config.json"])
        add(tar, "MANIFEST.json", man)
        add(tar, "model.bin", FILES["model.bin"])
    else:
        add(tar, "MANIFEST.json", man)
        for name, data, t, kw in before:
            add(tar, name, data, t, **kw)
        for name, data in entries:
            add(tar, name, data)
        for name, data, t, kw in after:
            add(tar, name, data, t, **kw)
    tar.close()
    data = raw.getvalue()
    if kind == "bomb":
        # Past the end of the archive: 64 MiB of zeros, a few kilobytes compressed.
        data += bytes(64 << 20)
    return gzip.compress(data, mtime=0)


def main():
    kind, out = sys.argv[1], sys.argv[2]
    if kind in ("truncated", "crc", "garbage", "not-gzip", "empty"):
        data = build("good")
        if kind == "truncated":
            data = data[: len(data) - 20]
        elif kind == "crc":
            data = data[:-8] + bytes([data[-8] ^ 1]) + data[-7:]
        elif kind == "garbage":
            data += b"trailing garbage"
        elif kind == "not-gzip":
            data = b"PK\x03\x04 this is a zip file, not a gzip stream"
        else:
            data = b""
    else:
        data = build(kind)
    with open(out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
