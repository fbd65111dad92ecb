"""Platform-aware neural architecture search (survey section 4.4): MnasNet and DPP-Net."""
