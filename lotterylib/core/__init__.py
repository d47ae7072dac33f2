"""The core wing: tasks and their data, models and the gates that mask them, training, metrics, physical
pruning, precision, progress lines, the rules of the authors' code, files and parameter errors.

Imports nothing from the other wings. Everything above builds on it:
core < pruning < analysis < stages < workflow (tests/test_architecture.py)."""
