"""Training: SSD matching, the YOLACT losses, the trainer and ``yolact train``."""
