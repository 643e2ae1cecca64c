"""A third-party gRPC client, driven only by the vendor's image, against the sandbox: ``buf curl``.

``make install`` puts buf in ``.tools/`` (npm ``@bufbuild/buf``). The vendor's image is built without its
imports (no ``google/protobuf/*.proto``, ``google/api/*``, ``google/type/*``), and buf cannot print a
message holding a Timestamp whose definition is missing, so the test completes the image with those
standard files from the protobuf runtime, as any user of the image has to.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import _tools
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from invora import _catalog
from invora.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "codegen" / "upstream" / "invora.binpb"


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vendor image plus the standard files it imports but does not carry (dependencies first)."""
    image = descriptor_pb2.FileDescriptorSet.FromString(IMAGE.read_bytes())
    for svc in _catalog.services():
        svc.load()  # registers every imported file in the default pool
    pool = descriptor_pool.Default()
    have = {f.name for f in image.file}
    extra: list[descriptor_pb2.FileDescriptorProto] = []

    def add(name: str) -> None:
        if name in have:
            return
        fd = pool.FindFileByName(name)
        for dep in fd.dependencies:
            add(dep.name)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        extra.append(proto)
        have.add(name)

    for f in list(image.file):
        for dep in f.dependency:
            add(dep)
    assert {p.name for p in extra} >= {"google/protobuf/timestamp.proto", "google/api/annotations.proto"}
    out = tmp_path_factory.mktemp("buf") / "invora-complete.binpb"
    out.write_bytes(descriptor_pb2.FileDescriptorSet(file=[*extra, *image.file]).SerializeToString())
    return out


def test_buf_curl_creates_gets_and_lists_plans_and_customers(schema: Path) -> None:
    buf = _tools.buf()
    with Sandbox() as sb:
        token = sb.mint_token(sb.tenant)

        def curl(method: str, body: dict[str, Any]) -> dict[str, Any]:
            r = subprocess.run(
                [
                    buf,
                    "curl",
                    "--schema",
                    str(schema),
                    "--protocol",
                    "grpc",
                    "--http2-prior-knowledge",
                    "-H",
                    f"Authorization: Bearer {token}",
                    "-d",
                    json.dumps(body),
                    f"http://{sb.grpc_target}/{method}",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert r.returncode == 0, (method, r.returncode, r.stderr[-2000:])
            out: dict[str, Any] = json.loads(r.stdout)
            return out

        plans = "invora.billing.plans.v2.PlansService"
        customers = "invora.billing.customers.v2.CustomersService"
        plan = curl(
            f"{plans}/Create",
            {
                "code": "business_pro",
                "name": "Business Pro",
                "amountCents": "50000",
                "amountCurrency": "CURRENCY_ENUM_SAR",
                "interval": "PLAN_INTERVAL_MONTHLY",
                "payInAdvance": True,
            },
        )["plan"]
        assert plan["id"] and plan["code"] == "business_pro" and plan["createdAt"]
        assert curl(f"{plans}/Get", {"id": plan["id"]})["plan"] == plan
        listed = curl(f"{plans}/List", {})
        assert [p["id"] for p in listed["items"]] == [plan["id"]] and listed["totalCount"] == "1"

        cust = curl(f"{customers}/Create", {"externalId": "cust_abc", "name": "Acme"})["customer"]
        assert cust["id"] and cust["externalId"] == "cust_abc"
        assert curl(f"{customers}/Get", {"id": cust["id"]})["customer"]["name"] == "Acme"
        assert [c["id"] for c in curl(f"{customers}/List", {})["items"]] == [cust["id"]]
