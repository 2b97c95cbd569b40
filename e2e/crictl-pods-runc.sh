#!/usr/bin/env bash
# e2e/crictl-pods.sh with the pod's runtime handler "runc" (Debian's runc, in berthd's default
# config): the same crictl steps through the OCI runtime command line.
RUNTIME_HANDLER=runc exec "$(dirname "$0")/crictl-pods.sh"
