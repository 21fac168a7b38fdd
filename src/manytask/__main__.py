"""``python -m manytask`` (and ``torchrun ... -m manytask train CONFIG``): the command line."""

from manytask.cli import main

main()
