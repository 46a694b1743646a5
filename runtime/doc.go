// Package runtime is the seam between the atoll agent and the container engine
// on its host: the narrow Runtime interface, the plain types that cross it
// (ContainerSpec, ContainerInfo, Stats, LogLine, ...), the sentinel errors, and
// small pure helpers (SplitArgs, ParseOwner, passwd lookup, spec validation).
//
// It owns no state and does no I/O. Implementations live in subpackages:
// runtime/docker (the real one, on the Docker Engine API) and runtime/fake
// (in memory, for unit tests and scale simulations). Real behaviour is always
// tested against real Docker; the fake follows the same contract, and both
// run the conformance tests in runtime/runtimetest.
//
// Containers are identified by the id Create returns; every method that takes
// an id also accepts the container's name.
package runtime
