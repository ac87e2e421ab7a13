"""Training: the Trainer helpers, the contrastive alignment of the encoders (02_train), and the
staged fusion training of the fused model (03_fuse). Imports metrics, models and data; never the
analyses or the lab."""
