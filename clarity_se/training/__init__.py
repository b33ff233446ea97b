"""Training of the enhancement models (``clarity-se train``): any registered model."""
