"""Downstream evaluation: does a pre-trained backbone help when labels are scarce?

The protocol follows Li et al. (GeoKR, §V-A): per repeat a seeded stratified 3:1
train/test split, per label fraction a stratified subset of that repeat's training
part, the same splits and seeds for every initialisation so the comparison is fair.
"""
