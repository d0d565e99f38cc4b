"""Networks: segmentation (FC-DenseNet, U-Net)."""
