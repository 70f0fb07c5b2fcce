"""train stage of caltech-edge."""
