"""The `scalarize` command line (:func:`run` is its entry point)."""

import sys

INTERRUPTED = "\nscalarize: interrupted; run the same command again to resume\n"


def run() -> int:
    """The ``scalarize`` command: :func:`scalarize.cli.main.main`, imported here so that a Ctrl-C
    while the command is still being imported ends in the same one line (exit 130) as later on."""
    try:
        from scalarize.cli.main import exit_code, main
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED)
        return 130
    return exit_code(main())
