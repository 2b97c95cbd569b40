// Command crienv checks, over CRI directly, that an environment value with bytes that are not
// UTF-8 reaches the container unchanged (CRI v0.37 made KeyValue.value bytes; crictl's JSON
// configs can carry only strings). It runs a host-network pod with one busybox container that
// prints the variable in hex, compares the container's log with the bytes sent, and removes the
// pod whatever happens. Exit status 0 only when the bytes match.
//
//	crienv -socket /run/berth/berth.sock -image 127.0.0.1:5000/library/busybox:latest -logs DIR
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// value is what the container must see: ASCII around bytes that no UTF-8 decoder accepts.
var value = []byte{'a', 0xff, 0xfe, 0x80, 'z'}

const want = "61 ff fe 80 7a"

func main() {
	socket := flag.String("socket", "", "the CRI runtime socket")
	image := flag.String("image", "", "a busybox image already pulled")
	logs := flag.String("logs", "", "the pod's log directory (created)")
	flag.Parse()
	if *socket == "" || *image == "" || *logs == "" {
		fmt.Fprintln(os.Stderr, "crienv: -socket, -image and -logs are required")
		os.Exit(2)
	}
	if err := run(*socket, *image, *logs); err != nil {
		fmt.Fprintln(os.Stderr, "crienv:", err)
		os.Exit(1)
	}
	fmt.Println("crienv: the container saw", want)
}

func run(socket, image, logs string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect %s: %w", socket, err)
	}
	defer conn.Close()
	rt := runtime.NewRuntimeServiceClient(conn)
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}

	podConfig := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "crienv", Namespace: "e2e", Uid: "crienv-uid"},
		LogDirectory: logs,
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE},
		}},
	}
	pod, err := rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig})
	if err != nil {
		return fmt.Errorf("RunPodSandbox: %w", err)
	}
	defer func() {
		cleanup, done := context.WithTimeout(context.Background(), 30*time.Second)
		defer done()
		if _, err := rt.StopPodSandbox(cleanup, &runtime.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			fmt.Fprintln(os.Stderr, "crienv: StopPodSandbox:", err)
		}
		if _, err := rt.RemovePodSandbox(cleanup, &runtime.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			fmt.Fprintln(os.Stderr, "crienv: RemovePodSandbox:", err)
		}
	}()

	ctr, err := rt.CreateContainer(ctx, &runtime.CreateContainerRequest{
		PodSandboxId: pod.PodSandboxId,
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "env"},
			Image:    &runtime.ImageSpec{Image: image},
			Command:  []string{"sh", "-c", `printf %s "$RAW" | od -An -tx1`},
			Envs:     []*runtime.KeyValue{{Key: "RAW", Value: value}},
			LogPath:  "env.log",
		},
		SandboxConfig: podConfig,
	})
	if err != nil {
		return fmt.Errorf("CreateContainer with env RAW=%q: %w", value, err)
	}
	if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		return fmt.Errorf("StartContainer: %w", err)
	}
	for {
		st, err := rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctr.ContainerId})
		if err != nil {
			return fmt.Errorf("ContainerStatus: %w", err)
		}
		if st.Status.State == runtime.ContainerState_CONTAINER_EXITED {
			if st.Status.ExitCode != 0 {
				return fmt.Errorf("the container exited with %d", st.Status.ExitCode)
			}
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the container did not exit: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	log, err := os.ReadFile(filepath.Join(logs, "env.log"))
	if err != nil {
		return err
	}
	// CRI log lines: "<time> stdout F <text>"; od pads with spaces.
	var seen []string
	for _, line := range bytes.Split(bytes.TrimSpace(log), []byte("\n")) {
		if fields := strings.SplitN(string(line), " ", 4); len(fields) == 4 {
			seen = append(seen, strings.TrimSpace(fields[3]))
		}
	}
	if got := strings.Join(seen, " "); got != want {
		return fmt.Errorf("the container saw RAW as %q, want %q", got, want)
	}
	return nil
}
