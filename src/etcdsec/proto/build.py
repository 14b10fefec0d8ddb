"""Dev-time only: regenerate `etcd_v3_pb2.py` from `etcd_v3.proto` (needs `pip install grpcio-tools`).

The generated module is committed, so the sensor needs only `protobuf` at run time.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def main() -> int:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    here = Path(__file__).parent
    rc = protoc.main(["protoc", f"-I{here}", f"--python_out={here}", str(here / "etcd_v3.proto")])
    if rc != 0:
        return int(rc)
    out = here / "etcd_v3_pb2.py"
    # The gencode pins a minimum protobuf runtime; the descriptor API it uses is older than that,
    # so drop the pin and let any protobuf >= 4.25 (our declared floor) load it.
    text = re.sub(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)\n", "", out.read_text())
    text = text.replace("from google.protobuf import runtime_version as _runtime_version\n", "")
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
