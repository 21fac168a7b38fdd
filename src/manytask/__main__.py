"""``python -m manytask`` (and ``torchrun ... -m manytask train CONFIG``): the command line."""

from manytask.cli import main

if __name__ == "__main__":
    main()
