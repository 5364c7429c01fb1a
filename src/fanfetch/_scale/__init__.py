"""Scale-out: ``--workers`` (processes on one machine) and ``--cluster`` (Ray).

Nothing in the core imports this package; the runner, the CLI and the blocking API reach in
only when asked to scale out (a test checks the layering).
"""
