"""Artificial GAN fingerprints (Yu, Skripniuk, Abdelnabi, Fritz, ICCV 2021): an encoder plants a bit
string in training images, a decoder reads it back from what a generator trained on them makes, and
an image is attributed to a user by a binomial test. ``python -m dif.artificial --help``."""
