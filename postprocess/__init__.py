"""rewarm postprocessing: `python3 -m postprocess --help`."""
