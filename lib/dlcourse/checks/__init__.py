"""Exercise checks, one module per lab: ``dlcourse.checks.lab00``, ``dlcourse.checks.lab01`` ..."""
