/* The program of the pod sandbox ("pause") image that e2e/bench/pods.sh builds for containerd,
 * which needs one per pod (berth pins a pod's namespaces in its shim instead). Like Kubernetes'
 * pause: sleep until SIGINT or SIGTERM, reaping any child re-parented to us meanwhile. As PID 1
 * of a PID namespace only handled signals arrive, so they are blocked and taken with sigwait.
 * Built with `gcc -static -Os -s`. */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>

int main(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return 1;
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (sigwait(&set, &sig) != 0)
			return 1;
		if (sig != SIGCHLD)
			return 0;
	}
}
