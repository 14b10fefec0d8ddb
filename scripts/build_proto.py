"""Dev-time only: regenerate each `*_pb2.py` in src/etcdsec/proto/ from its `.proto` (needs
`pip install grpcio-tools`). Run: `.venv/bin/python scripts/build_proto.py`.

The generated modules are committed, so etcdsec needs only `protobuf` at run time, and this script
does not ship in the wheel.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main() -> int:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    here = Path(__file__).resolve().parents[1] / "src" / "etcdsec" / "proto"
    for proto in sorted(here.glob("*.proto")):
        rc = protoc.main(["protoc", f"-I{here}", f"--python_out={here}", str(proto)])
        if rc != 0:
            return int(rc)
        _unpin(here / f"{proto.stem}_pb2.py")
    return 0


def _unpin(out: Path) -> None:
    # The gencode pins a minimum protobuf runtime; the descriptor API it uses is older than that,
    # so drop the pin and let any protobuf >= 4.25 (our declared floor) load it.
    text = re.sub(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)\n", "", out.read_text())
    text = text.replace("from google.protobuf import runtime_version as _runtime_version\n", "")
    # protoc imports a sibling .proto's module at the top level; here it lives in this package
    text = re.sub(r"^import (\w+_pb2) as ", r"from etcdsec.proto import \1 as ", text, flags=re.M)
    out.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
