"""The deploy gate: the golden suite run N times under injected faults, judged per gate
by raw pass rate and Wilson lower confidence bound (docs/operations.md#deploy-gate)."""
