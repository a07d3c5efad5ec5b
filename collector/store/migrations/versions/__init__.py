"""One module per revision, named NNNN_slug.py; scripts/migration.py writes new ones."""
