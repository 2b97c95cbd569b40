#!/usr/bin/env python3
"""Calls every RPC of the CRI v1 RuntimeService and ImageService once, through grpcio, for
tests/grpc_clients.rs: a reply berth sends that the generated Python types cannot decode shows up
as an error line.

Usage: cri_every_rpc.py SOCKET STUB_DIR IMAGE CGROUP_PARENT LOG_DIR

Runs one pod (in CGROUP_PARENT) with one sleeping container, resizes the pod with
UpdatePodSandboxResources, reads statuses, stats (with whether each PSI field is present), metrics,
events and the streaming URLs, then removes everything. Prints one JSON object per call:
{"call": NAME, "code": "OK" | grpc status code name, ...facts about the reply}.
"""
import json
import os
import sys

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cri_client import stubs  # noqa: E402 (the directory was added just above)

MIB = 1 << 20


def emit(call, code="OK", **facts):
    print(json.dumps({"call": call, "code": code, **facts}), flush=True)


def call(name, fn, facts=lambda reply: {}):
    """Runs one unary call; a decode failure is an INTERNAL error line like any other."""
    try:
        reply = fn()
    except grpc.RpcError as e:
        emit(name, e.code().name, details=e.details())
        return None
    emit(name, **facts(reply))
    return reply


def stream(name, fn, timeout):
    """Reads a server stream until it ends (or, for endless ones, until `timeout`)."""
    count = 0
    try:
        for _ in fn(timeout):
            count += 1
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            emit(name, e.code().name, details=e.details())
            return
    emit(name, messages=count)


def psi_facts(stats):
    return {
        "cpu_psi": stats.cpu.HasField("psi"),
        "memory_psi": stats.memory.HasField("psi"),
        "io": stats.HasField("io"),
    }


def main():
    socket, out, image, parent, logs = sys.argv[1:6]
    pb, rpc = stubs(out)
    with grpc.insecure_channel("unix:" + socket) as channel:
        rt = rpc.RuntimeServiceStub(channel)
        im = rpc.ImageServiceStub(channel)
        spec = pb.ImageSpec(image=image)
        call("PullImage", lambda: im.PullImage(pb.PullImageRequest(image=spec), timeout=120))
        call("ImageStatus", lambda: im.ImageStatus(pb.ImageStatusRequest(image=spec, verbose=True), timeout=20))
        call("ListImages", lambda: im.ListImages(pb.ListImagesRequest(), timeout=20))
        stream("StreamImages", lambda t: im.StreamImages(pb.StreamImagesRequest(), timeout=t), 20)
        call("ImageFsInfo", lambda: im.ImageFsInfo(pb.ImageFsInfoRequest(), timeout=20))

        pod_config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name="every-rpc", uid="every-rpc-uid", namespace="test"),
            log_directory=logs,
            linux=pb.LinuxPodSandboxConfig(cgroup_parent=parent),
        )
        pod = call("RunPodSandbox", lambda: rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config), timeout=60))
        if pod is None:
            sys.exit(1)
        pod_id = pod.pod_sandbox_id
        ctr_config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="sleeper"),
            image=spec,
            command=["sleep", "3600"],
            log_path="sleeper.log",
        )
        created = call("CreateContainer", lambda: rt.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=ctr_config, sandbox_config=pod_config), timeout=60))
        if created is None:
            sys.exit(1)
        cid = created.container_id
        call("StartContainer", lambda: rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60))

        resources = pb.LinuxContainerResources(cpu_period=100000, cpu_quota=50000, cpu_shares=512,
                                               memory_limit_in_bytes=64 * MIB)
        overhead = pb.LinuxContainerResources(cpu_period=100000, cpu_quota=10000, cpu_shares=10,
                                              memory_limit_in_bytes=8 * MIB)
        call("UpdatePodSandboxResources", lambda: rt.UpdatePodSandboxResources(pb.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod_id, overhead=overhead, resources=resources), timeout=20))
        call("UpdatePodSandboxResources(unknown)", lambda: rt.UpdatePodSandboxResources(
            pb.UpdatePodSandboxResourcesRequest(pod_sandbox_id="f" * 64, resources=resources), timeout=20))
        call("PodSandboxStatus", lambda: rt.PodSandboxStatus(pb.PodSandboxStatusRequest(
            pod_sandbox_id=pod_id, verbose=True), timeout=20),
            lambda r: {"resources_kept": f'"memory_limit_in_bytes":{64 * MIB}' in r.info.get("info", "")})
        call("ListPodSandbox", lambda: rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=20))
        stream("StreamPodSandboxes", lambda t: rt.StreamPodSandboxes(pb.StreamPodSandboxesRequest(), timeout=t), 20)
        call("ContainerStatus", lambda: rt.ContainerStatus(pb.ContainerStatusRequest(
            container_id=cid, verbose=True), timeout=20))
        call("ListContainers", lambda: rt.ListContainers(pb.ListContainersRequest(), timeout=20))
        stream("StreamContainers", lambda t: rt.StreamContainers(pb.StreamContainersRequest(), timeout=t), 20)
        call("UpdateContainerResources", lambda: rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
            container_id=cid, linux=pb.LinuxContainerResources(cpu_shares=256)), timeout=20))
        call("ReopenContainerLog", lambda: rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid), timeout=20))
        call("ExecSync", lambda: rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10), timeout=20),
             lambda r: {"exit_code": r.exit_code})
        call("Exec", lambda: rt.Exec(pb.ExecRequest(container_id=cid, cmd=["true"], stdout=True), timeout=20))
        call("Attach", lambda: rt.Attach(pb.AttachRequest(container_id=cid, stdout=True), timeout=20))
        call("PortForward", lambda: rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod_id, port=[80]), timeout=20))

        call("ContainerStats", lambda: rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid), timeout=20),
             lambda r: psi_facts(r.stats))
        call("ListContainerStats", lambda: rt.ListContainerStats(pb.ListContainerStatsRequest(), timeout=20),
             lambda r: {"stats": len(r.stats)})
        stream("StreamContainerStats", lambda t: rt.StreamContainerStats(pb.StreamContainerStatsRequest(), timeout=t), 20)
        call("PodSandboxStats", lambda: rt.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=pod_id), timeout=20),
             lambda r: psi_facts(r.stats.linux))
        call("ListPodSandboxStats", lambda: rt.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(), timeout=20))
        stream("StreamPodSandboxStats", lambda t: rt.StreamPodSandboxStats(pb.StreamPodSandboxStatsRequest(), timeout=t), 20)
        call("ListMetricDescriptors", lambda: rt.ListMetricDescriptors(pb.ListMetricDescriptorsRequest(), timeout=20))
        call("ListPodSandboxMetrics", lambda: rt.ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest(), timeout=20))
        stream("StreamPodSandboxMetrics",
               lambda t: rt.StreamPodSandboxMetrics(pb.StreamPodSandboxMetricsRequest(), timeout=t), 20)
        stream("GetContainerEvents", lambda t: rt.GetContainerEvents(pb.GetEventsRequest(), timeout=t), 2)

        call("Version", lambda: rt.Version(pb.VersionRequest(), timeout=20))
        call("Status", lambda: rt.Status(pb.StatusRequest(verbose=True), timeout=20),
             lambda r: {"userns_host_network": r.features.user_namespaces_host_network})
        call("RuntimeConfig", lambda: rt.RuntimeConfig(pb.RuntimeConfigRequest(), timeout=20))
        call("UpdateRuntimeConfig", lambda: rt.UpdateRuntimeConfig(pb.UpdateRuntimeConfigRequest(
            runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.250.0.0/24"))), timeout=20))
        call("CheckpointContainer", lambda: rt.CheckpointContainer(pb.CheckpointContainerRequest(container_id=cid), timeout=20))
        call("CheckpointPod", lambda: rt.CheckpointPod(pb.CheckpointPodRequest(pod_sandbox_id=pod_id), timeout=20))
        call("RestorePod", lambda: rt.RestorePod(pb.RestorePodRequest(), timeout=20))

        call("StopContainer", lambda: rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1), timeout=30))
        call("RemoveContainer", lambda: rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=30))
        call("StopPodSandbox", lambda: rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=30))
        call("UpdatePodSandboxResources(stopped)", lambda: rt.UpdatePodSandboxResources(
            pb.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id, resources=resources), timeout=20))
        call("RemovePodSandbox", lambda: rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=30))
        call("RemoveImage", lambda: im.RemoveImage(pb.RemoveImageRequest(image=spec), timeout=20))


if __name__ == "__main__":
    main()
