"""``python -m invora ...``: the ``invora`` command, for environments without the console script."""

if __name__ == "__main__":
    from invora.cli import main

    raise SystemExit(main())
