"""Networks: segmentation (FC-DenseNet, U-Net) and the ResNet-18 classifier."""
