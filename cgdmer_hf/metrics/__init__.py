"""Local `evaluate` metric modules shipped with the package (load with `evaluate.load(path)`)."""
