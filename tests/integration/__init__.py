"""imagewright test suite: real builds, checked from inside the images."""
