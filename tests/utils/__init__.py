"""Unit tests of manytask._utils: one helper per job."""
