"""`python -m probekit` (and `torchrun -m probekit train …`) runs the command line."""

from probekit.cli import main

if __name__ == "__main__":
    main()
