"""The benchmark: tooling, never part of the lab's images."""
