/*
 * nnp: installed setuid root in the nonewprivs test image. Run as a non-root user it prints the
 * effective uid it got: 0 when the setuid bit took effect, the caller's uid under no_new_privs.
 * Built statically by hack/testimages/build.sh.
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Effective uid: %d\n", (int)geteuid());
	return 0;
}
