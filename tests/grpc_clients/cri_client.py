#!/usr/bin/env python3
"""A gRPC C-core (grpcio) CRI client for tests/grpc_clients.rs.

Usage: cri_client.py SOCKET STUB_DIR [IMAGE] [AUTHORITY]

Generates the CRI stubs from the CRI api.proto berth is built from (proto/k8s/cri-api) into STUB_DIR with grpc_tools.protoc,
then calls Version, ListPodSandbox and (when IMAGE is given) PullImage on unix:SOCKET. The
channel has grpcio's default options unless AUTHORITY is given (then it is sent as :authority).
Prints one JSON object per call; exits non-zero on the first failed call.
"""
import json
import os
import sys

import grpc
from grpc_tools import protoc

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto", "k8s", "cri-api", "v1")


def stubs(out):
    os.makedirs(out, exist_ok=True)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", "-I", PROTO_DIR, "-I", include,
                      "--python_out", out, "--grpc_python_out", out, "api.proto"])
    if rc != 0:
        sys.exit("grpc_tools.protoc failed on api.proto")
    sys.path.insert(0, out)
    import api_pb2, api_pb2_grpc  # noqa: E401 (generated just above)
    return api_pb2, api_pb2_grpc


def main():
    socket, out = sys.argv[1], sys.argv[2]
    image = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    authority = sys.argv[4] if len(sys.argv) > 4 else None
    pb, rpc = stubs(out)
    options = [("grpc.default_authority", authority)] if authority else []
    print(json.dumps({"grpcio": grpc.__version__}), flush=True)
    with grpc.insecure_channel("unix:" + socket, options=options) as channel:
        runtime = rpc.RuntimeServiceStub(channel)
        images = rpc.ImageServiceStub(channel)
        try:
            v = runtime.Version(pb.VersionRequest(), timeout=20)
            print(json.dumps({"call": "Version", "runtime_name": v.runtime_name,
                              "runtime_api_version": v.runtime_api_version}), flush=True)
            pods = runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=20)
            print(json.dumps({"call": "ListPodSandbox", "items": len(pods.items)}), flush=True)
            if image:
                pulled = images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=120)
                print(json.dumps({"call": "PullImage", "image_ref": pulled.image_ref}), flush=True)
        except grpc.RpcError as e:
            print(json.dumps({"error": str(e.code()), "details": e.details()}), flush=True)
            sys.exit(1)


if __name__ == "__main__":
    main()
