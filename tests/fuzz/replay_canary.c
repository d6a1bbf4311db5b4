/* replay_canary.c - a fuzz target that crashes on every input.  Linked with
 * replay.c it must make the driver fail (a should_fail test): the proof
 * that a crash in the real target cannot turn into a passing replay. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)data;
	(void)size;
	abort();
}
