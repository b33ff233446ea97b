"""Scene data: audio I/O, CEC2 records, manifests, the CEC2 loader and the demo renderer."""
