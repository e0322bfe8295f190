"""Dataset folders, image I/O and the synthetic abdomen phantom."""
